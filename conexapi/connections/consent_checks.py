"""What ties a consent together: the hash it is stored under, the browser binding cookie
(see ``oauth.py`` for why every consent is bound to one browser), and the origins it may
send the browser back to."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from conexapi.connections.errors import ReturnToNotAllowed
from conexapi.settings import Settings

BINDING_COOKIE_PREFIX = "conexapi_consent_"


def hash_value(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def binding_cookie_name(state: str) -> str:
    return BINDING_COOKIE_PREFIX + hash_value(state)[:16]


def new_binding() -> str:
    """A fresh value for the browser binding cookie."""
    return secrets.token_urlsafe(32)


def bound_to(presented: str | None, binding: str | None) -> bool:
    return (
        bool(presented)
        and binding is not None
        and hmac.compare_digest(hash_value(presented or ""), binding)
    )


# --- return_to ----------------------------------------------------------------------------


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(settings: Settings) -> set[str]:
    found = {_origin(settings.public_url)}
    for item in settings.oauth_allowed_return_origins.split(","):
        if item.strip():
            found.add(_origin(item.strip()))
    return {o for o in found if o}


def check_return_to(return_to: str | None, settings: Settings) -> str | None:
    """``return_to`` if it is an absolute http(s) URL on an allowed origin, else refuse."""
    if return_to is None or return_to == "":
        return None
    if len(return_to) > 1000 or any(c in return_to for c in "\\\r\n\t") or " " in return_to:
        raise ReturnToNotAllowed()
    origin = _origin(return_to)
    if origin is None or origin not in allowed_origins(settings):
        raise ReturnToNotAllowed(details={"allowed_origins": sorted(allowed_origins(settings))})
    return return_to
