"""JWT bearer tokens, verified the careful way.

A JSON Web Token is three base64url parts, ``header.payload.signature``. The header names the
algorithm, the payload carries *claims* (who issued it, for whom, until when), and the signature
proves that someone holding the issuer's key wrote exactly those bytes. A service that trusts a
token is trusting every claim in it, so the verifier must refuse anything it was not told to
expect. What this one checks, and why each check exists:

* **An algorithm allowlist per issuer.** The header is written by whoever made the token, the
  attacker included. Letting it choose the algorithm invites ``alg: none`` (no signature at all)
  and *key confusion* (an RS256 public key, which is public, used as an HS256 secret).
* **Keys per issuer.** Each trusted issuer has its own key and its own algorithms. A token is
  checked with the key of the issuer it names; an issuer not on the list is refused outright.
* **Required claims**: ``exp`` (a token that never expires is a password that can't be
  changed), ``aud`` (a token minted for the billing service must not open the orders service),
  ``iss``, ``iat`` and ``sub``.
* **A small leeway** (seconds, not hours) for clocks that disagree a little.
* **Short lifetimes for service-to-service tokens**: an issuer may cap ``exp - iat``.

Every refusal is a :class:`TokenRejected` with a ``reason`` from :data:`REASONS`, and
:class:`BearerAuth` turns it into a 401 with that reason: never a 500, whatever the header holds.

Signatures and claim checks are PyJWT's; this module only decides what to ask of it.
When not to use it: tokens that must be revocable at once need an introspection call or a
deny list as well; a signature cannot be taken back before ``exp``.
"""

from __future__ import annotations

import binascii
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from labkit.core.errors import BadParameter, UnknownName

#: Every reason a token can be refused for, with a plain explanation.
REASONS: dict[str, str] = {
    "missing_token": "no Authorization header",
    "bad_scheme": "the Authorization header is not 'Bearer <token>'",
    "malformed": "not a JWT: it does not decode as header.payload.signature",
    "algorithm_not_allowed": "the header names an algorithm this issuer may not use",
    "bad_key": "the key cannot be used with the algorithm the token names",
    "bad_signature": "the signature does not match the header and payload",
    "expired": "exp is in the past (beyond the leeway)",
    "not_yet_valid": "nbf is in the future (beyond the leeway)",
    "issued_in_future": "iat is in the future (beyond the leeway)",
    "wrong_audience": "aud does not name this service",
    "wrong_issuer": "iss names an issuer this service does not trust",
    "missing_claim": "a required claim is absent",
    "lifetime_too_long": "exp - iat is longer than this issuer may grant",
}

DEFAULT_REQUIRED = ("exp", "iat", "aud", "iss", "sub")


class TokenRejected(Exception):
    """A token was refused; ``reason`` is a key of :data:`REASONS`, ``detail`` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail or REASONS.get(reason, "")
        super().__init__(f"{reason}: {self.detail}")


@dataclass(frozen=True)
class IssuerKey:
    """What the verifier knows about one trusted issuer.

    ``key`` verifies its signatures: a PEM public key for RS/ES/EdDSA algorithms, the shared
    secret for HS ones. ``algorithms`` is this issuer's allowlist. ``max_lifetime_s`` caps how
    long its tokens may live (service-to-service issuers get minutes, not days).
    """

    issuer: str
    key: str | bytes
    algorithms: tuple[str, ...]
    max_lifetime_s: float | None = None


@dataclass
class JWTVerifier:
    """Checks bearer tokens for one audience (this service) against trusted issuers.

    ``enforce_allowlist=False`` and a shorter ``required`` exist only so the lab can show what
    breaks without them; a real service keeps the defaults.
    """

    audience: str
    issuers: Sequence[IssuerKey]
    leeway_s: float = 30.0
    required: tuple[str, ...] = DEFAULT_REQUIRED
    enforce_allowlist: bool = True
    _by_issuer: dict[str, IssuerKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.leeway_s < 0 or self.leeway_s > 300:
            raise BadParameter("leeway_s", self.leeway_s, "must lie between 0 and 300 seconds")
        self._by_issuer = {k.issuer: k for k in self.issuers}

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims if every check passes; otherwise :class:`TokenRejected`."""
        import jwt

        try:
            peek = jwt.decode_complete(token, options={"verify_signature": False})
            header, unverified = peek["header"], peek["payload"]
        except (jwt.PyJWTError, ValueError, TypeError, binascii.Error) as exc:
            raise TokenRejected("malformed", str(exc) or "cannot decode") from None
        iss = unverified.get("iss")
        if iss is None:
            raise TokenRejected("missing_claim", "the token has no 'iss' claim")
        if not isinstance(iss, str) or iss not in self._by_issuer:
            raise TokenRejected("wrong_issuer", f"iss={iss!r} is not a trusted issuer")
        trusted = self._by_issuer[iss]
        alg = header.get("alg")
        if self.enforce_allowlist:
            if alg not in trusted.algorithms:
                allowed = ", ".join(trusted.algorithms)
                raise TokenRejected(
                    "algorithm_not_allowed", f"alg={alg!r}; {iss} may only use {allowed}"
                )
            algorithms = list(trusted.algorithms)
        else:  # the mistake: let the token's own header choose
            algorithms = [str(alg)]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                trusted.key,
                algorithms=algorithms,
                audience=self.audience if "aud" in self.required else None,
                issuer=iss,
                leeway=self.leeway_s,
                options={
                    "require": list(self.required),
                    "verify_aud": "aud" in self.required,
                },
            )
        except jwt.PyJWTError as exc:
            raise rejection_for(exc) from None
        except (ValueError, TypeError) as exc:  # a key PyJWT cannot use with that algorithm
            raise TokenRejected("bad_key", str(exc)) from None
        _check_lifetime(claims, trusted, self.leeway_s)
        return claims


def rejection_for(exc: Exception) -> TokenRejected:
    """Map PyJWT's exception to one of :data:`REASONS`."""
    import jwt

    table: list[tuple[type[Exception], str]] = [
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not_yet_valid"),
        (jwt.InvalidAudienceError, "wrong_audience"),
        (jwt.InvalidIssuerError, "wrong_issuer"),
        (jwt.MissingRequiredClaimError, "missing_claim"),
        (jwt.InvalidIssuedAtError, "issued_in_future"),
        (jwt.InvalidSignatureError, "bad_signature"),
        (jwt.InvalidAlgorithmError, "algorithm_not_allowed"),
        (jwt.InvalidKeyError, "bad_key"),
    ]
    for kind, reason in table:
        if isinstance(exc, kind):
            return TokenRejected(reason, str(exc))
    return TokenRejected("malformed", str(exc) or type(exc).__name__)


def _check_lifetime(claims: Mapping[str, Any], trusted: IssuerKey, leeway_s: float) -> None:
    if trusted.max_lifetime_s is None or "exp" not in claims or "iat" not in claims:
        return
    lifetime = float(claims["exp"]) - float(claims["iat"])
    if lifetime > trusted.max_lifetime_s + leeway_s:
        raise TokenRejected(
            "lifetime_too_long",
            f"{lifetime:.0f} s granted; {trusted.issuer} may grant at most "
            f"{trusted.max_lifetime_s:.0f} s",
        )


@dataclass
class TokenMinter:
    """Issues tokens for one issuer with its private key (or HS secret) and one algorithm."""

    issuer: str
    private_key: str | bytes
    algorithm: str
    lifetime_s: float = 300.0

    def mint(
        self,
        subject: str,
        audience: str,
        *,
        lifetime_s: float | None = None,
        now: float | None = None,
        **extra: Any,
    ) -> str:
        """A signed token for ``subject`` to call ``audience``, valid for ``lifetime_s``."""
        import jwt

        issued = int(time.time() if now is None else now)
        life = self.lifetime_s if lifetime_s is None else lifetime_s
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": int(issued + life),
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm)


@dataclass
class KeySet:
    """The lab's trusted issuers: a user-facing auth server (RS256) and one service (ES256).

    Made fresh with :func:`make_keyset`; nothing is written to disk.
    """

    auth_issuer: str
    auth_private_pem: bytes
    auth_public_pem: bytes
    service_issuer: str
    service_private_pem: bytes
    service_public_pem: bytes
    service_max_lifetime_s: float = 120.0

    def trusted(self) -> list[IssuerKey]:
        return [
            IssuerKey(self.auth_issuer, self.auth_public_pem, ("RS256",)),
            IssuerKey(
                self.service_issuer,
                self.service_public_pem,
                ("ES256",),
                max_lifetime_s=self.service_max_lifetime_s,
            ),
        ]

    def auth_minter(self, lifetime_s: float = 900.0) -> TokenMinter:
        return TokenMinter(self.auth_issuer, self.auth_private_pem, "RS256", lifetime_s)

    def service_minter(self, lifetime_s: float = 60.0) -> TokenMinter:
        return TokenMinter(self.service_issuer, self.service_private_pem, "ES256", lifetime_s)


def make_keyset(
    auth_issuer: str = "https://auth.shop.local", service_issuer: str = "svc:gateway"
) -> KeySet:
    """A new RSA key for the auth server and an EC key for the gateway service."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pems(private: Any) -> tuple[bytes, bytes]:
        priv = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pub = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return priv, pub

    rsa_priv, rsa_pub = pems(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_priv, ec_pub = pems(ec.generate_private_key(ec.SECP256R1()))
    return KeySet(auth_issuer, rsa_priv, rsa_pub, service_issuer, ec_priv, ec_pub)


def bearer_token(authorization: str | None) -> str:
    """The token from an ``Authorization`` header value, or :class:`TokenRejected`.

    Strict on purpose: the syllabus' ``TrimPrefix`` also accepts a bare token, or any
    scheme it fails to strip, and a parser that guesses is one more thing to attack.
    """
    if authorization is None or not authorization.strip():
        raise TokenRejected("missing_token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
        shown = authorization if len(authorization) <= 40 else authorization[:37] + "..."
        raise TokenRejected("bad_scheme", f"expected 'Bearer <token>', got {shown!r}")
    return token.strip()


class Verifier(Protocol):
    """Anything with ``verify(token) -> claims`` that raises :class:`TokenRejected`."""

    def verify(self, token: str) -> dict[str, Any]: ...


class BearerAuth:
    """ASGI middleware: every HTTP request needs a valid bearer token, or it gets a 401.

    The claims of an accepted token are put in ``scope["state"]["claims"]`` (Starlette's
    ``request.state.claims``). A refusal is a JSON body ``{"error": reason, "detail": ...}``
    and a ``WWW-Authenticate`` header as RFC 6750 asks. Paths in ``public`` need no token.
    """

    def __init__(self, app: Any, verifier: Verifier, public: Sequence[str] = ()) -> None:
        self.app = app
        self.verifier = verifier
        self.public = tuple(public)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"authorization")
        try:
            header = None if raw is None else raw.decode("latin-1")
            claims = self.verifier.verify(bearer_token(header))
        except TokenRejected as exc:
            await _deny(send, exc)
            return
        scope.setdefault("state", {})["claims"] = claims
        await self.app(scope, receive, send)


async def _deny(send: Any, exc: TokenRejected) -> None:
    body = json.dumps({"error": exc.reason, "detail": exc.detail}).encode()
    description = exc.reason.replace('"', "")
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (
                    b"www-authenticate",
                    f'Bearer error="invalid_token", error_description="{description}"'.encode(),
                ),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def reason_text(reason: str) -> str:
    """The plain explanation of a rejection reason."""
    if reason not in REASONS:
        raise UnknownName("rejection reason", reason, list(REASONS))
    return REASONS[reason]
