"""Reference solution: one algorithm (the issuer's), the expected key, and required claims."""

import jwt


def verify(token, keys):
    return jwt.decode(
        token,
        keys.auth_public_pem,
        algorithms=["RS256"],  # the allowlist: never what the token's header asks for
        audience="orders",
        issuer=keys.auth_issuer,
        leeway=30,
        options={"require": ["exp", "iat", "aud", "iss", "sub"]},
    )
