"""Linking accounts: OAuth2 consent for marketplaces, API credentials for ERPs; list, unlink."""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from conexapi.connections import oauth, service
from conexapi.connections.errors import (
    CredentialsRejected,
    UnknownConnector,
    UpstreamUnavailable,
)
from conexapi.connections.schemas import (
    AuthorizeIn,
    AuthorizeOut,
    ConnectionOut,
    CredentialsIn,
)
from conexapi.connections.scope import MerchantScope, MerchantWriteScope
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.integrations import integrations
from conexapi.kit.crypto import KeyRing
from conexapi.kit.errors import Forbidden
from conexapi.kit.resources import Resources
from conexapi.models import Merchant
from connectors.base import ErpConnector, MarketplaceConnector
from connectors.errors import AuthError, ConnectorError, TransientError
from connectors.models import ErpCredentials

router = APIRouter(tags=["connections"])

CALLBACK_PATH = "/oauth/{connector}/callback"


def _connector(resources: Resources, name: str, kind: str) -> Any:
    """This process's instance of connector ``name`` (shared: ERP ones cache sessions)."""
    found = integrations(resources)
    instance = (found.marketplaces if kind == "marketplace" else found.erps).get(name)
    if instance is None:
        raise UnknownConnector(f"No {kind} connector named {name!r}.")
    return instance


def _keys(resources: Resources) -> KeyRing:
    return KeyRing.parse(resources.settings.encryption_keys)


# --- marketplace consent --------------------------------------------------------------------


@router.post(
    "/api/v1/connections/{connector}/authorize",
    response_model=AuthorizeOut,
    summary="Start linking a marketplace account (OAuth2 consent)",
)
async def authorize(
    connector: str,
    body: AuthorizeIn,
    scope: MerchantScope,
    session: SessionDep,
    resources: ResourcesDep,
) -> AuthorizeOut:
    """The consent URL to send the merchant to. It is valid for 10 minutes, once."""
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    started = await oauth.start_consent(
        session,
        instance,
        resources.settings,
        _keys(resources),
        merchant_id=scope.merchant_id,
        user_id=scope.user_id,
        return_to=body.return_to,
        site=body.site,
        bind_browser=False,
    )
    return AuthorizeOut(authorization_url=started.authorization_url, expires_at=started.expires_at)


@router.get(
    "/api/v1/connections/{connector}/authorize",
    status_code=303,
    response_class=RedirectResponse,
    summary="Start linking a marketplace account from a browser (redirects to the consent)",
)
async def authorize_browser(
    connector: str,
    scope: MerchantWriteScope,
    session: SessionDep,
    resources: ResourcesDep,
    return_to: Annotated[str | None, Query(max_length=1000)] = None,
    site: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
) -> RedirectResponse:
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    started = await oauth.start_consent(
        session,
        instance,
        resources.settings,
        _keys(resources),
        merchant_id=scope.merchant_id,
        user_id=scope.user_id,
        return_to=return_to,
        site=site,
        bind_browser=True,
    )
    response = RedirectResponse(started.authorization_url, status_code=303)
    if started.cookie is not None:
        name, value = started.cookie
        response.set_cookie(
            name,
            value,
            max_age=resources.settings.oauth_state_ttl_seconds,
            path=CALLBACK_PATH.format(connector=connector),
            secure=resources.settings.public_url.startswith("https://"),
            httponly=True,
            # Lax: the cookie rides along on the top-level redirect back from the consent.
            samesite="lax",
        )
    return response


@router.get(CALLBACK_PATH, summary="Where the marketplace sends the merchant back after consent")
async def callback(
    connector: str,
    request: Request,
    resources: ResourcesDep,
    state: Annotated[str | None, Query()] = None,
    code: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query()] = None,
) -> Response:
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    result = await oauth.finish_consent(
        resources.sessionmaker,
        instance,
        _keys(resources),
        state=state,
        code=code,
        error=error,
        cookies=dict(request.cookies),
    )
    target = result.redirect_url()
    response: Response
    if target is not None:
        response = RedirectResponse(target, status_code=303)
    else:
        response = _result_page(result)
    if state:
        response.delete_cookie(
            oauth.binding_cookie_name(state), path=CALLBACK_PATH.format(connector=connector)
        )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _result_page(result: oauth.ConsentResult) -> HTMLResponse:
    title = "Account linked" if result.ok else "Account not linked"
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} - ConexAPI</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto;">
<h1>{html.escape(title)}</h1>
<p>{html.escape(result.message)}</p>
<p><small>Code: <code>{html.escape(result.code)}</code></small></p>
</body></html>
"""
    return HTMLResponse(body, status_code=200 if result.ok else 400)


# --- ERP credentials ------------------------------------------------------------------------


@router.post(
    "/api/v1/connections/{connector}",
    response_model=ConnectionOut,
    status_code=201,
    summary="Link an ERP company with its API credentials (checked before they are saved)",
)
async def link_credentials(
    connector: str,
    body: CredentialsIn,
    scope: MerchantScope,
    session: SessionDep,
    resources: ResourcesDep,
) -> ConnectionOut:
    instance: ErpConnector = _connector(resources, connector, "erp")
    credentials = ErpCredentials(
        username=body.username.strip(),
        access_key=body.access_key,
        budget=service.rate_budget(instance, body.mode, body.requests_per_minute),
    )
    # Upstream first, before this request opens a transaction.
    try:
        await instance.authenticate(credentials)
    except AuthError:
        raise CredentialsRejected(
            "The username or access key was not accepted. Check them and try again."
        ) from None
    except TransientError:
        raise UpstreamUnavailable() from None
    except ConnectorError as exc:
        raise CredentialsRejected(
            f"The credentials could not be checked ({exc.kind}).", details={"code": exc.code}
        ) from None
    if await session.get(Merchant, scope.merchant_id) is None:
        raise Forbidden("Unknown merchant.", code="unknown_merchant")
    conn = await service.link_erp_account(
        session,
        scope.merchant_id,
        connector,
        credentials,
        # One API user belongs to one company, and /auth names no company id.
        account_id=credentials.username.lower(),
        name=body.name or credentials.username,
        mode=body.mode,
        requests_per_minute=body.requests_per_minute,
        keys=_keys(resources),
    )
    return ConnectionOut.of(conn)


# Listing, inspecting, pausing, resuming and unlinking connections: conexapi/ops/accounts.py.
