"""Mercado Libre's OAuth 2.0 pieces: per-site consent hosts, PKCE and token answers."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from pydantic import SecretStr

from connectors.errors import DataError, TransientError
from connectors.models import TokenSet

#: Consent host per site (EXTERNAL_APIS §1.2). Peru's host follows the pattern but was not
#: seen in a source.
AUTH_HOSTS: dict[str, str] = {
    "MCO": "auth.mercadolibre.com.co",
    "MLM": "auth.mercadolibre.com.mx",
    "MLA": "auth.mercadolibre.com.ar",
    "MLC": "auth.mercadolibre.cl",
    "MLU": "auth.mercadolibre.com.uy",
    "MPE": "auth.mercadolibre.com.pe",
    "MLB": "auth.mercadolivre.com.br",
}
DEFAULT_SITE = "MCO"


def auth_base(configured: str, site: str | None) -> str:
    """The consent base URL for ``site``.

    A configured base that is one of the real consent hosts means production: the site picks
    the country's host. Anything else (a sandbox, a test server) is used as configured.
    """
    site = (site or DEFAULT_SITE).upper()
    if site not in AUTH_HOSTS:
        raise DataError(f"unknown Mercado Libre site {site!r}", code="unknown_site", field="site")
    host = urlsplit(configured).hostname or ""
    if host in AUTH_HOSTS.values():
        return f"https://{AUTH_HOSTS[site]}"
    return configured.rstrip("/")


def new_code_verifier() -> str:
    # 64 random bytes → 86 characters of the unreserved set, inside RFC 7636's 43..128.
    return secrets.token_urlsafe(64)


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    base: str, *, client_id: str, redirect_uri: str, state: str, code_challenge: str
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base}/authorization?{query}"


def token_set(body: Any, *, now: datetime | None = None) -> TokenSet:
    """A token answer (both grants have the same shape) as a :class:`TokenSet`."""
    if not isinstance(body, dict):
        raise TransientError("Mercado Libre token answer is not an object", code="invalid_response")
    access = body.get("access_token")
    user_id = body.get("user_id")
    expires_in: Any = body.get("expires_in")
    if not isinstance(access, str) or not access or user_id is None:
        raise TransientError(
            "Mercado Libre token answer lacks access_token or user_id", code="invalid_response"
        )
    try:
        seconds = max(int(expires_in), 0)
    except (TypeError, ValueError):
        # Always read expires_in; when it is unusable, treat the token as already stale so
        # the caller refreshes on first use instead of trusting a guessed lifetime.
        seconds = 0
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    return TokenSet(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh) if isinstance(refresh, str) and refresh else None,
        expires_at=(now or datetime.now(UTC)) + timedelta(seconds=seconds),
        account_id=str(user_id),
        scope=scope if isinstance(scope, str) else None,
    )
