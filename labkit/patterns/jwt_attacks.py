"""The JWT attack gallery: forged, stale and misdirected tokens, and verifiers that fall for them.

Each :class:`Attack` is a real token built against the lab's keys, with the reason the careful
:class:`~labkit.patterns.jwt_auth.JWTVerifier` must give for refusing it. Two naive verifiers
stand beside it so a learner can see which attacks get through which mistake:

* :class:`SyllabusVerifier` ports the syllabus' Go middleware. It pins the algorithm *family*
  (good: that stops ``alg: none`` and key confusion) but checks neither ``aud`` nor ``iss``,
  and ``exp`` only when the token happens to carry one. So a token minted for another service,
  one from another environment's issuer, or one that never expires all get in.
* :class:`HeaderTrustingVerifier` lets the token's header pick the algorithm, as JWT libraries
  did before 2015. ``alg: none`` needs no signature at all, and an HS256 token "signed" with
  the RS256 *public* key (which anyone can download) verifies. PyJWT now refuses both even when
  misused, which is why this one is written by hand with ``hmac``: it shows the bug itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.patterns.jwt_auth import JWTVerifier, KeySet, TokenRejected

AUDIENCE = "orders"


@dataclass(frozen=True)
class Attack:
    """One gallery entry: a token, the reason it must be refused (None: it must pass)."""

    name: str
    title: str
    token: str
    expected: str | None
    how: str
    defence: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made without PyJWT (which refuses a PEM key as an HMAC secret)."""
    signing_input = f"{_json_part(header)}.{_json_part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def build_gallery(
    keys: KeySet, *, audience: str = AUDIENCE, now: float | None = None
) -> list[Attack]:
    """Every attack token, built fresh against ``keys`` at time ``now`` (default: the clock)."""
    import jwt

    t = int(time.time() if now is None else now)
    auth = keys.auth_minter()
    base = {
        "iss": keys.auth_issuer,
        "sub": "user-42",
        "aud": audience,
        "iat": t,
        "nbf": t,
        "exp": t + 900,
        "role": "customer",
    }

    def signed(**changes: Any) -> str:
        claims = {k: v for k, v in {**base, **changes}.items() if v is not None}
        return jwt.encode(claims, keys.auth_private_pem, algorithm="RS256")

    good = auth.mint("user-42", audience, now=t, role="customer")
    head, payload, sig = good.split(".")
    forged = json.loads(_unb64url(payload))
    forged["role"] = "admin"
    tampered = f"{head}.{_json_part(forged)}.{sig}"
    none_token = (
        f"{_json_part({'alg': 'none', 'typ': 'JWT'})}.{_json_part({**base, 'role': 'admin'})}."
    )
    confused = hand_signed(
        {"alg": "HS256", "typ": "JWT"}, {**base, "role": "admin"}, keys.auth_public_pem
    )
    svc_day = keys.service_minter().mint("svc:gateway", audience, lifetime_s=86_400, now=t)
    return [
        Attack(
            "good",
            "A good token",
            good,
            None,
            "Signed by the auth server with RS256, for this service, valid for 15 minutes.",
            "Passes every check.",
        ),
        Attack(
            "alg_none",
            "alg: none",
            none_token,
            "algorithm_not_allowed",
            "The header says 'none' and the signature is empty; the payload claims admin.",
            "The allowlist: this issuer signs with RS256 only.",
        ),
        Attack(
            "key_confusion",
            "HS256 signed with the RS256 public key",
            confused,
            "algorithm_not_allowed",
            "The public key is public. Used as an HMAC secret it makes a valid HS256 "
            "signature for any payload.",
            "The allowlist (and PyJWT refusing a PEM key as an HMAC secret).",
        ),
        Attack(
            "expired",
            "Expired",
            signed(iat=t - 7200, nbf=t - 7200, exp=t - 3600),
            "expired",
            "A real token, an hour past its exp: stolen from a log, replayed later.",
            "exp, with a leeway of seconds, not hours.",
        ),
        Attack(
            "not_yet_valid",
            "Not yet valid",
            signed(nbf=t + 3600, exp=t + 4500),
            "not_yet_valid",
            "nbf is an hour ahead: it is not valid yet.",
            "nbf, with the same small leeway.",
        ),
        Attack(
            "wrong_audience",
            "Wrong audience",
            signed(aud="billing"),
            "wrong_audience",
            "A real token minted for the billing service, replayed against orders.",
            "aud must name this service.",
        ),
        Attack(
            "wrong_issuer",
            "Wrong issuer",
            signed(iss="https://auth.staging.shop.local"),
            "wrong_issuer",
            "Staging's auth server shares the production key (a real mistake); its tokens "
            "verify, but staging users are not production users.",
            "iss must be a trusted issuer, and each issuer has its own key.",
        ),
        Attack(
            "tampered",
            "Tampered payload",
            tampered,
            "bad_signature",
            "A good token with role changed to admin; header and signature untouched.",
            "The signature covers the payload byte for byte.",
        ),
        Attack(
            "missing_claims",
            "Missing claims (no exp)",
            signed(exp=None),
            "missing_claim",
            "Minted by a debug script without exp: it would work forever.",
            "exp, aud, iss, iat and sub are required, not checked only when present.",
        ),
        Attack(
            "garbage",
            "Garbage",
            "hello-i-am-a-token",
            "malformed",
            "Not a JWT at all.",
            "Decoding fails cleanly: a 401, never a 500.",
        ),
        Attack(
            "long_service_token",
            "A day-long service token",
            svc_day,
            "lifetime_too_long",
            "A service-to-service token that lives a day: if it leaks, it works all day.",
            "The service issuer may grant at most a couple of minutes.",
        ),
    ]


class SyllabusVerifier:
    """The syllabus' Go middleware, in Python: algorithm family pinned, claims mostly unchecked.

    The syllabus pins the HMAC family and one shared ``JWT_SECRET``; the lab's auth server
    signs with RSA, so this port pins the RSA family and its public key. The holes are the
    same: no ``aud``, no ``iss``, and ``exp``/``nbf`` checked only when present.
    """

    name = "syllabus"

    def __init__(self, keys: KeySet) -> None:
        self.key = keys.auth_public_pem

    def verify(self, token: str) -> dict[str, Any]:
        import jwt

        from labkit.patterns.jwt_auth import rejection_for

        try:
            return jwt.decode(
                token,
                self.key,
                algorithms=["RS256", "RS384", "RS512"],  # "is it the RSA family?"
                options={"verify_aud": False, "require": []},  # exp/nbf only if present
            )
        except jwt.PyJWTError as exc:
            raise rejection_for(exc) from None
        except (ValueError, TypeError, binascii.Error) as exc:
            raise TokenRejected("malformed", str(exc)) from None


class HeaderTrustingVerifier:
    """Lets the token's ``alg`` header choose how to check it: the pre-2015 library bug."""

    name = "trusts_header"

    def __init__(self, keys: KeySet) -> None:
        self.key = keys.auth_public_pem

    def verify(self, token: str) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, payload, sig = token.split(".")
            header = json.loads(_unb64url(head))
            claims = json.loads(_unb64url(payload))
            signature = _unb64url(sig)
        except (ValueError, binascii.Error) as exc:
            raise TokenRejected("malformed", str(exc)) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRejected("malformed", "header and payload must be JSON objects")
        signing_input = f"{head}.{payload}".encode()
        alg = header.get("alg")
        if alg == "HS256":  # the key is used as whatever the header says it is
            good = hmac.new(self.key, signing_input, hashlib.sha256).digest()
            if not hmac.compare_digest(good, signature):
                raise TokenRejected("bad_signature")
        elif alg == "RS256":
            public = serialization.load_pem_public_key(self.key)
            try:
                public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
            except InvalidSignature:
                raise TokenRejected("bad_signature") from None
        elif alg != "none":  # "none": nothing to check, so nothing is checked
            raise TokenRejected("algorithm_not_allowed", f"alg={alg!r}")
        now = time.time()
        if isinstance(claims.get("exp"), int | float) and claims["exp"] < now:
            raise TokenRejected("expired")
        if isinstance(claims.get("nbf"), int | float) and claims["nbf"] > now:
            raise TokenRejected("not_yet_valid")
        return claims


def peek(token: str) -> dict[str, Any]:
    """Header and payload of a token, decoded *without* checking anything, for display.

    Never trust what this returns: it is what the token says about itself. A part that does
    not decode is shown as the error instead.
    """
    parts = token.split(".")
    out: dict[str, Any] = {"parts": len(parts)}
    for name, part in zip(("header", "payload"), parts[:2], strict=False):
        try:
            out[name] = json.loads(_unb64url(part))
        except (ValueError, binascii.Error) as exc:
            out[name] = f"does not decode: {exc}"
    out["signature_bytes"] = len(_b64_or_empty(parts[2])) if len(parts) == 3 else None
    return out


def _b64_or_empty(part: str) -> bytes:
    try:
        return _unb64url(part)
    except (ValueError, binascii.Error):
        return b""


@dataclass(frozen=True)
class Verdict:
    """What one verifier made of one gallery token."""

    attack: str
    verifier: str
    accepted: bool
    reason: str | None
    detail: str


def judge(verify: Callable[[str], Any], token: str, attack: str, verifier: str) -> Verdict:
    try:
        verify(token)
    except TokenRejected as exc:
        return Verdict(attack, verifier, False, exc.reason, exc.detail)
    return Verdict(attack, verifier, True, None, "accepted")


def verifiers_for(
    keys: KeySet, names: Sequence[str], *, audience: str = AUDIENCE
) -> dict[str, Any]:
    """Named verifiers: ``careful`` (the right way), ``syllabus`` and ``trusts_header``."""
    from labkit.core.errors import UnknownName

    made: dict[str, Callable[[], Any]] = {
        "careful": lambda: JWTVerifier(audience, keys.trusted()),
        "syllabus": lambda: SyllabusVerifier(keys),
        "trusts_header": lambda: HeaderTrustingVerifier(keys),
    }
    for name in names:
        if name not in made:
            raise UnknownName("verifier", name, list(made))
    return {name: made[name]() for name in names}


def run_gallery(gallery: Sequence[Attack], verifiers: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack: expected reason and each verifier's verdict (``accepted`` or reason)."""
    rows = []
    for attack in gallery:
        row: dict[str, Any] = {
            "attack": attack.name,
            "title": attack.title,
            "expected": attack.expected or "accepted",
        }
        for name, verifier in verifiers.items():
            v = judge(verifier.verify, attack.token, attack.name, name)
            row[name] = "accepted" if v.accepted else v.reason
        rows.append(row)
    return rows
