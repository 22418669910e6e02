"""The consent page, ``POST /oauth/token`` and ``GET /users/me`` (EXTERNAL_APIS §1.2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from connectors.mercadolibre.sandbox.core import MLSandbox
from connectors.mercadolibre.sandbox.state import (
    INVALID_GRANT,
    App,
    AuthCode,
    is_id,
    ml_error,
    oauth_error,
)

_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def _page(params: dict[str, str], app: App, sellers: list[tuple[int, str]]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in params.items() if v
    )
    options = "".join(
        f'<option value="{uid}">{html.escape(nick)} ({uid})</option>' for uid, nick in sellers
    )
    return f"""<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>Mercado Libre sandbox: autorizar</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}
button{{padding:.6rem 1.2rem;margin-right:.5rem}}</style></head>
<body>
<h1>Autorizar aplicación</h1>
<p>La aplicación <strong>{html.escape(app.client_id)}</strong> quiere acceder a tu cuenta
(<code>offline_access read write</code>).</p>
<form method="post" action="/authorization/decision">
{hidden}
<label>Vendedor: <select name="user_id">{options}</select></label>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
</body></html>"""


def build_router(sb: MLSandbox) -> APIRouter:
    router = APIRouter(tags=["oauth"])
    state = sb.state

    def _check_request(params: dict[str, str]) -> tuple[App | None, Response | None]:
        """Validate a consent request; errors before the redirect URI is trusted are pages,
        later ones are redirects carrying ``error`` (RFC 6749 §4.1.2.1)."""
        app = state.apps.get(params.get("client_id", ""))
        if app is None:
            return None, ml_error(400, "invalid_client", "Invalid client_id")
        if params.get("redirect_uri") != app.redirect_uri:
            return None, ml_error(
                400, "invalid_request", "The redirect_uri does not match the original."
            )

        def fail(code: str, message: str) -> RedirectResponse:
            query = {"error": code, "error_description": message}
            if params.get("state"):
                query["state"] = params["state"]
            return RedirectResponse(_with_query(app.redirect_uri, query), status_code=302)

        if params.get("response_type") != "code":
            return None, fail("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method") or ("plain" if challenge else "")
        if method and method not in ("S256", "plain"):
            return None, fail("invalid_request", "code_challenge_method must be S256 or plain")
        if app.pkce and not challenge:
            # PKCE is optional per application, but mandatory once the application enables it.
            return None, fail("invalid_request", "code_challenge is required for this app")
        return app, None

    def _grant(params: dict[str, str], app: App, user_id: int) -> RedirectResponse:
        code = f"TG-{secrets.token_hex(12)}-{user_id}"
        challenge = params.get("code_challenge") or None
        state.codes[code] = AuthCode(
            code=code,
            client_id=app.client_id,
            user_id=user_id,
            redirect_uri=app.redirect_uri,
            challenge=challenge,
            method=(params.get("code_challenge_method") or "plain") if challenge else None,
            expires_at=time.time() + sb.cfg.code_ttl_seconds,
        )
        query = {"code": code}
        if params.get("state"):
            query["state"] = params["state"]
        return RedirectResponse(_with_query(app.redirect_uri, query), status_code=302)

    def _deny(params: dict[str, str], app: App) -> RedirectResponse:
        query = {"error": "access_denied", "error_description": "The user denied access"}
        if params.get("state"):
            query["state"] = params["state"]
        return RedirectResponse(_with_query(app.redirect_uri, query), status_code=302)

    def _decide(params: dict[str, str], app: App, consent: str | None, deny: bool) -> Response:
        if deny:
            return _deny(params, app)
        if consent is None:
            sellers = [(s.user_id, s.nickname) for s in state.sellers.values()]
            return HTMLResponse(_page(params, app, sellers))
        if not is_id(consent) or int(consent) not in state.sellers:
            return ml_error(400, "invalid_user", f"Unknown user {consent!r}")
        return _grant(params, app, int(consent))

    @router.get("/authorization")
    async def authorization(request: Request) -> Response:
        params = {k: request.query_params.get(k, "") for k in _PARAMS}
        app, error = _check_request(params)
        if error is not None or app is None:
            return error or ml_error(400, "invalid_request", "bad request")
        deny = request.query_params.get("auto_deny", "").lower() in ("1", "true", "yes") or (
            request.query_params.get("error") == "access_denied"
        )
        return _decide(params, app, request.query_params.get("auto_consent"), deny)

    @router.post("/authorization/decision")
    async def decision(request: Request) -> Response:
        form = await request.form()
        params = {k: str(form.get(k) or "") for k in _PARAMS}
        app, error = _check_request(params)
        if error is not None or app is None:
            return error or ml_error(400, "invalid_request", "bad request")
        allow = form.get("decision") == "allow"
        return _decide(params, app, str(form.get("user_id") or ""), deny=not allow)

    @router.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        if any(k in request.query_params for k in ("grant_type", "client_secret", "code")):
            return oauth_error("invalid_request", "Parameters must be sent in the request body")
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return oauth_error("invalid_request", "Content-Type must be form-urlencoded")
        form = {k: str(v) for k, v in (await request.form()).items()}
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            return oauth_error("unsupported_grant_type", "Unsupported grant_type")
        app = state.apps.get(form.get("client_id", ""))
        if app is None or not hmac.compare_digest(
            app.client_secret.encode(), form.get("client_secret", "").encode()
        ):
            return oauth_error("invalid_client", "Invalid client credentials")
        if grant_type == "authorization_code":
            return _exchange(app, form)
        return _refresh(app, form)

    def _exchange(app: App, form: dict[str, str]) -> JSONResponse:
        code = state.codes.get(form.get("code", ""))
        if code is None or code.used or time.time() >= code.expires_at:
            return oauth_error("invalid_grant", INVALID_GRANT)
        if code.client_id != app.client_id:
            return oauth_error("invalid_grant", "The client_id does not match the original.")
        if form.get("redirect_uri") != code.redirect_uri:
            return oauth_error("invalid_grant", "The redirect_uri does not match the original.")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return oauth_error("invalid_request", "code_verifier is required")
            if not _pkce_matches(verifier, code.challenge, code.method or "plain"):
                return oauth_error("invalid_grant", "Error validating grant. Invalid code_verifier")
        code.used = True
        user = state.sellers.get(code.user_id)
        if user is None:
            return oauth_error("invalid_grant", INVALID_GRANT)
        return JSONResponse(state.issue_tokens(app.client_id, user.user_id, sb.cfg))

    def _refresh(app: App, form: dict[str, str]) -> JSONResponse:
        token = form.get("refresh_token", "")
        grant = state.refresh.get(token)
        if (
            grant is None
            or grant.used
            or grant.revoked
            or time.time() >= grant.expires_at
            or grant.client_id != app.client_id
            # Only the newest refresh token of an authorization works.
            or state.latest_refresh.get((grant.client_id, grant.user_id)) != token
        ):
            return oauth_error("invalid_grant", INVALID_GRANT)
        grant.used = True
        return JSONResponse(state.issue_tokens(app.client_id, grant.user_id, sb.cfg))

    @router.get("/users/me")
    async def users_me(request: Request) -> JSONResponse:
        grant = state.token_owner(request.headers.get("authorization"))
        if grant is None:
            return unauthorized()
        seller = state.sellers.get(grant.user_id)
        if seller is None:
            return ml_error(404, "not_found", "User not found")
        return JSONResponse(seller.public())

    return router


def unauthorized() -> JSONResponse:
    return ml_error(401, "invalid_token", "invalid access token")
