"""Exercise: reject the forged JWT.

The learner writes ``verify(token, keys) -> claims``: return the token's claims if the orders
service should trust it, raise (any exception) if not. ``keys`` is the lab's
:class:`~labkit.patterns.jwt_auth.KeySet`: ``keys.auth_public_pem`` is the auth server's public
key, which signs with RS256, and ``keys.auth_issuer`` its name; the orders service's audience
is ``"orders"``. The starting code decodes the token without checking anything, as a first
draft that "just reads the user" does.

The check makes fresh keys and throws the chapter's attack gallery at the learner's function:
``alg: none``, HS256 keyed with the public key, an expired token, one not yet valid, one for
another audience, one from another issuer, a tampered payload, one without ``exp``, garbage and
a day-long service token. The good token must pass with its claims; every other must be refused.
What it takes is an algorithm allowlist and required claims (the careful
:class:`~labkit.patterns.jwt_auth.JWTVerifier` of chapter 12 is one answer; the exercise asks
you to build yours with PyJWT).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from labkit.exercises import Report
from labkit.patterns.jwt_attacks import AUDIENCE, build_gallery
from labkit.patterns.jwt_auth import KeySet, make_keyset

Verify = Callable[[str, KeySet], Any]


def check(verify: Verify, *, keys: KeySet | None = None) -> Report:
    """Every gallery token through ``verify``: the good one must pass, the rest must not."""
    report = Report("Reject the forged JWT")
    if not callable(verify) or inspect.iscoroutinefunction(verify):
        report.problem("verify must be a plain function: `def verify(token, keys): ...`.")
        return report
    keys = keys or make_keyset()
    verdicts: dict[str, str] = {}
    for attack in build_gallery(keys, audience=AUDIENCE):
        try:
            claims = verify(attack.token, keys)
        except Exception as exc:  # a refusal, whatever the learner raised
            verdicts[attack.name] = f"refused ({type(exc).__name__})"
            if attack.expected is None:
                report.problem(
                    f"the good token was refused ({type(exc).__name__}: {str(exc)[:100]}). "
                    f"It is signed by {keys.auth_issuer} with RS256 for audience {AUDIENCE!r}."
                )
            continue
        verdicts[attack.name] = "accepted"
        if attack.expected is None:
            if not isinstance(claims, dict) or claims.get("sub") != "user-42":
                report.problem("for the good token, return its claims (a dict with sub user-42).")
        else:
            report.problem(f"{attack.title} got in. {attack.how} What stops it: {attack.defence}")
    report.facts = {"verdicts": verdicts}
    return report
