"""Headers every answer carries, and the optional bearer token that guards ``/metrics``.

:class:`SecurityHeadersMiddleware` is the outermost middleware of the application, so it
also completes the 500 and 413 envelopes the inner middlewares answer themselves; the
webhook fast path, which answers before that stack, sends :func:`json_answer_headers`.
A route that needs another ``Content-Security-Policy`` or ``Cache-Control`` (the API
documentation, the consent callback) sets its own; the middleware only fills in what an
answer lacks.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: For anything that is not a page (JSON, metrics text): nothing may load, run or frame it.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: For a plain page without a policy of its own (the consent result): styles written in the
#: page itself, no script, no request anywhere.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: One year. Not ``includeSubDomains``: the operator's other hosts under the same domain
#: are not ours to move to HTTPS.
HSTS = "max-age=31536000"

#: Sent with every answer (the worker's metrics endpoint sends them too).
STATIC_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)

#: What ``/metrics`` answers (401) when a token is configured and the request lacks it.
METRICS_REFUSED = (
    "Send the metrics token (CONEXAPI_METRICS_TOKEN) as: Authorization: Bearer <token>."
)

#: A request carrying one of these is answered with something meant for that caller only.
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"cookie", b"x-api-key"})
#: Everything under it is the authenticated API (and the token endpoint, RFC 6749 5.1).
_API_PREFIX = "/api/"


def fixed_headers(https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """What every answer carries whatever its kind (HSTS when served as ``https``)."""
    fixed = [(name.lower().encode(), value.encode()) for name, value in STATIC_HEADERS]
    if https:
        fixed.append((b"strict-transport-security", HSTS.encode()))
    return tuple(fixed)


def json_answer_headers(https: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The complete set for a JSON answer to a request without credentials."""
    return (*fixed_headers(https), (b"content-security-policy", DATA_POLICY.encode()))


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` names ``token``; compared in constant time."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


class SecurityHeadersMiddleware:
    """Add the security headers an answer does not set itself (pure ASGI, any response)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self._fixed = fixed_headers(https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(_API_PREFIX) or any(
            name in _CREDENTIAL_HEADERS for name, _ in scope["headers"]
        )

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self._complete(list(message.get("headers", [])), private)
            await send(message)

        await self.app(scope, receive, _send)

    def _complete(
        self, headers: list[tuple[bytes, bytes]], private: bool
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        for name, value in self._fixed:
            if name not in present:
                headers.append((name, value))
        if b"content-security-policy" not in present:
            page = any(
                name.lower() == b"content-type" and value.lower().startswith(b"text/html")
                for name, value in headers
            )
            headers.append(
                (b"content-security-policy", (PAGE_POLICY if page else DATA_POLICY).encode())
            )
        if private and b"cache-control" not in present:
            headers.append((b"cache-control", b"no-store"))
        return headers


__all__ = [
    "DATA_POLICY",
    "METRICS_REFUSED",
    "PAGE_POLICY",
    "STATIC_HEADERS",
    "SecurityHeadersMiddleware",
    "bearer_matches",
    "fixed_headers",
    "json_answer_headers",
]
