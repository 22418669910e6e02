"""The client's address behind reverse proxies: believed only from the ones configured.

``X-Forwarded-For`` is whatever the client wrote plus what each proxy appended, so it is
read from the right, through trusted hops only: the first address that is not a trusted
proxy is the client. Anyone can send the header, so with no proxy configured (the
default) it is ignored and the client is the connection's peer. uvicorn's own
``ProxyHeadersMiddleware`` does exactly this; it wraps the whole application (the
webhook fast path included), so the rate limits, the audit log and the notification
source check all see the same address.
"""

from __future__ import annotations

from typing import cast

from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def trusted_proxy_list(value: str) -> list[str]:
    """``CONEXAPI_TRUSTED_PROXIES`` as a list (validated by the settings)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def behind_proxies(app: ASGIApp, trusted_proxies: str) -> ASGIApp:
    """``app`` taking the client address from the trusted proxies' headers, if any."""
    trusted = trusted_proxy_list(trusted_proxies)
    if not trusted:
        return app
    # uvicorn types its ASGI callables itself; they are the same protocol.
    return cast(ASGIApp, ProxyHeadersMiddleware(app, trusted_hosts=trusted))  # type: ignore[arg-type]
