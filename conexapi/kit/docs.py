"""``/docs`` (Swagger UI) and ``/redoc``, each answered with the policy its page needs.

Every other answer carries a ``Content-Security-Policy`` that lets nothing load (see
``kit/security.py``). These pages load their scripts and styles from a CDN, fetch
``/openapi.json`` (and, in Swagger UI, send the requests one tries out), and start with an
inline script. The routes are FastAPI's own (``get_swagger_ui_html`` and friends), served
here instead of by FastAPI (``docs_url=None``) so that the page and its policy come from
one place: the policy allows the inline script by the hash of the very text it renders,
never by ``'unsafe-inline'``, and names exactly the origins the page loads from.
What they need, beyond that:

- Swagger UI 5 writes inline styles (swagger-api/swagger-ui#10655) and draws its icons as
  ``data:`` images: ``style-src 'unsafe-inline'``, ``img-src data:``;
- ReDoc injects its styles as ``<style>`` elements and runs its search in a ``blob:``
  worker; its Google fonts are left out (``with_google_fonts=False``), so the page
  reaches no third party besides the CDN.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

SWAGGER_JS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
SWAGGER_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
FAVICON = "https://fastapi.tiangolo.com/img/favicon.png"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_CLOSING = "frame-ancestors 'none'; base-uri 'none'"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def inline_script_hashes(page: str) -> list[str]:
    """CSP sources (``'sha256-…'``) for each inline ``<script>`` of a page we rendered."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(page)
    ]


def _with_policy(response: HTMLResponse, *directives: str) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = "; ".join((*directives, _CLOSING))
    return response


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the documentation pages of ``app`` (built with ``docs_url=redoc_url=None``)."""
    openapi_url = app.openapi_url
    if not openapi_url:
        return
    redirect_url = app.swagger_ui_oauth2_redirect_url

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        response = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=SWAGGER_JS,
            swagger_css_url=SWAGGER_CSS,
            swagger_favicon_url=FAVICON,
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        scripts = " ".join(
            [_origin(SWAGGER_JS), *inline_script_hashes(bytes(response.body).decode())]
        )
        return _with_policy(
            response,
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {_origin(SWAGGER_CSS)} 'unsafe-inline'",
            f"img-src 'self' data: {_origin(FAVICON)}",
            "connect-src 'self'",
            "form-action 'self'",
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        response = get_swagger_ui_oauth2_redirect_html()
        scripts = " ".join(inline_script_hashes(bytes(response.body).decode()))
        return _with_policy(
            response, "default-src 'none'", f"script-src {scripts}", "form-action 'none'"
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        response = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )
        return _with_policy(
            response,
            "default-src 'none'",
            f"script-src {_origin(REDOC_JS)}",
            "style-src 'unsafe-inline'",
            f"img-src 'self' data: {_origin(FAVICON)}",
            "connect-src 'self'",
            "worker-src blob:",
            "form-action 'none'",
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    if redirect_url:
        app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)


__all__ = ["inline_script_hashes", "install_docs"]
