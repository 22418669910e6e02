"""Credentials on the wire: JWT access tokens, opaque refresh tokens, API keys.

Access tokens are short-lived HS256 JWTs naming the user and the login (session) they
belong to; the session is checked on every request, so a logout revokes them at once.
Refresh tokens and API keys are opaque random strings; only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from conexapi.models import utcnow
from conexapi.settings import Settings

ISSUER = "conexapi"
AUDIENCE = "conexapi-ops"
ALGORITHM = "HS256"

REFRESH_PREFIX = "crt"
API_KEY_PREFIX = "cxk"
_REFRESH = re.compile(rf"^{REFRESH_PREFIX}_(\d{{1,18}})_([A-Za-z0-9_-]{{43}})$")
_API_KEY = re.compile(rf"^{API_KEY_PREFIX}_([a-z0-9]{{12}})_([A-Za-z0-9_-]{{43}})$")


class InvalidToken(Exception):
    """Malformed, tampered, expired or otherwise unacceptable; the reason stays internal."""


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _signing_key(settings: Settings) -> OctKey:
    # A key of its own, derived from the secret key, so a token signature is useless for
    # anything else the secret key signs.
    derived = hmac.new(
        settings.secret_key.get_secret_value().encode(), b"conexapi.ops.jwt.v1", hashlib.sha256
    ).digest()
    return OctKey.import_key(derived)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: datetime


def issue_access_token(
    settings: Settings, user_id: int, session_id: int, now: datetime | None = None
) -> tuple[str, datetime]:
    now = now or utcnow()
    expires = now + timedelta(seconds=settings.access_token_ttl_seconds)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    token = jwt.encode({"alg": ALGORITHM}, claims, _signing_key(settings), algorithms=[ALGORITHM])
    return token, expires


def decode_access_token(
    settings: Settings, token: str, now: datetime | None = None
) -> AccessClaims:
    try:
        decoded = jwt.decode(token, _signing_key(settings), algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            now=int((now or utcnow()).timestamp()),
            iss={"essential": True, "value": ISSUER},
            aud={"essential": True, "value": AUDIENCE},
            sub={"essential": True},
            sid={"essential": True},
            exp={"essential": True},
            typ={"essential": True, "value": "access"},
        )
        registry.validate(decoded.claims)
        claims = decoded.claims
        return AccessClaims(
            user_id=int(claims["sub"]),
            session_id=int(claims["sid"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo),
        )
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(type(exc).__name__) from None


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2


def new_refresh_token(session_id: int) -> tuple[str, str]:
    """``(token, sha256 of its secret)``; the token names its session."""
    secret = secrets.token_urlsafe(32)
    return f"{REFRESH_PREFIX}_{session_id}_{secret}", sha256_hex(secret)


def parse_refresh_token(token: str) -> tuple[int, str]:
    """``(session id, sha256 of its secret)``."""
    match = _REFRESH.match(token)
    if match is None:
        raise InvalidToken("malformed refresh token")
    return int(match.group(1)), sha256_hex(match.group(2))


def new_api_key() -> tuple[str, str, str]:
    """``(key, prefix, sha256 of the key)``. The prefix is public: it names the key."""
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, sha256_hex(key)


def parse_api_key(key: str) -> tuple[str, str]:
    """``(prefix, sha256 of the key)``."""
    match = _API_KEY.match(key)
    if match is None:
        raise InvalidToken("malformed API key")
    return match.group(1), sha256_hex(key)


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
