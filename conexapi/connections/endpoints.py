"""Linking accounts: OAuth2 consent for marketplaces, API credentials for ERPs; list, unlink."""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse

from conexapi.connections import oauth, service
from conexapi.connections.consent_checks import binding_cookie_name, new_binding
from conexapi.connections.errors import (
    CredentialsRejected,
    UnknownConnector,
    UpstreamUnavailable,
)
from conexapi.connections.schemas import (
    SITE_MAX_LENGTH,
    AuthorizeIn,
    AuthorizeOut,
    ConnectionOut,
    CredentialsIn,
)
from conexapi.connections.scope import MerchantScope, MerchantWriteScope
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.crypto import KeyRing
from conexapi.kit.errors import Forbidden
from conexapi.kit.resources import Resources
from conexapi.models import Merchant
from connectors.base import ErpConnector, MarketplaceConnector
from connectors.errors import AuthError, ConnectorError, TransientError
from connectors.models import ErpCredentials

router = APIRouter(tags=["connections"])

CALLBACK_PATH = "/oauth/{connector}/callback"
#: The binding cookie reaches the consent link's page and the callback, nothing else.
COOKIE_PATH = "/oauth/{connector}"


def _connector(resources: Resources, name: str, kind: str) -> Any:
    """This process's instance of connector ``name`` (shared: ERP ones cache sessions)."""
    found = resources.integrations
    instance = (found.marketplaces if kind == "marketplace" else found.erps).get(name)
    if instance is None:
        raise UnknownConnector(f"No {kind} connector named {name!r}.")
    return instance


def _check_site(instance: MarketplaceConnector, site: str | None, where: str) -> None:
    """A 422 like the request's own validation for a site the marketplace does not have:
    which sites exist is the connector's to say, so it is checked once the connector is
    known."""
    if site is None or site.upper() in (s.upper() for s in instance.sites):
        return
    known = ", ".join(instance.sites) or "none"
    raise RequestValidationError(
        [
            {
                "loc": (where, "site"),
                "msg": f"Not a site of {instance.name}; give one of: {known}.",
                "type": "unknown_site",
            }
        ]
    )


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
    """The consent link to send the merchant to. It is valid for 10 minutes, once.

    The link opens a page of this service naming the merchant; the browser that
    continues from there is the only one that can finish the consent."""
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    _check_site(instance, body.site, "body")
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
    site: Annotated[str | None, Query(max_length=SITE_MAX_LENGTH)] = None,
) -> RedirectResponse:
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    _check_site(instance, site, "query")
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
        _set_binding_cookie(response, resources, connector, *started.cookie)
    return response


def _set_binding_cookie(
    response: Response, resources: Resources, connector: str, name: str, value: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=resources.settings.oauth_state_ttl_seconds,
        path=COOKIE_PATH.format(connector=connector),
        secure=resources.settings.public_url.startswith("https://"),
        httponly=True,
        # Lax: the cookie rides along on the top-level redirect back from the consent, and
        # on the consent link page's own POST, but not on a POST from another site.
        samesite="lax",
    )


@router.get(
    oauth.LINK_PATH,
    response_class=HTMLResponse,
    summary="A consent link's page: names the merchant; continuing binds this browser",
)
async def consent_link_page(
    connector: str,
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    state: Annotated[str | None, Query()] = None,
) -> Response:
    _connector(resources, connector, "marketplace")
    cookie = request.cookies.get(binding_cookie_name(state)) if state else None
    try:
        link = await oauth.open_consent_link(session, connector, state=state, cookie=cookie)
    except oauth.ConsentLinkRefused as exc:
        return _private(_result_page(exc.result))
    response = _link_page(link, state or "")
    if not cookie and state:
        _set_binding_cookie(
            response, resources, connector, binding_cookie_name(state), new_binding()
        )
    return _private(response)


@router.post(
    oauth.LINK_PATH,
    status_code=303,
    response_class=RedirectResponse,
    summary="Continue a consent link: binds this browser and redirects to the consent",
)
async def continue_consent_link(
    connector: str,
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    state: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    instance: MarketplaceConnector = _connector(resources, connector, "marketplace")
    cookie = request.cookies.get(binding_cookie_name(state)) if state else None
    try:
        url = await oauth.continue_consent_link(
            session, instance, _keys(resources), state=state, cookie=cookie
        )
    except oauth.ConsentLinkRefused as exc:
        return _private(_result_page(exc.result))
    return _private(RedirectResponse(url, status_code=303))


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
            binding_cookie_name(state), path=COOKIE_PATH.format(connector=connector)
        )
    return _private(response)


def _private(response: Response) -> Response:
    """Pages and redirects that carry a state: never cached, never in a Referer, never framed
    (a framed "continue" button could be clicked for the visitor)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response


def _link_page(link: oauth.ConsentLink, state: str) -> HTMLResponse:
    who = html.escape(oauth.label(link.connector))
    merchant = html.escape(link.merchant_name)
    action = html.escape(oauth.LINK_PATH.format(connector=link.connector))
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link your {who} account - ConexAPI</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto;">
<h1>Link your {who} account</h1>
<p>Your {who} account will be linked to the merchant <strong>{merchant}</strong> in
ConexAPI, which will then read its orders to invoice them.</p>
<p>Continue only if you asked for this link. It can be used once, from this browser.</p>
<form method="post" action="{action}">
<input type="hidden" name="state" value="{html.escape(state)}">
<button type="submit">Continue to {who}</button>
</form>
</body></html>
"""
    return HTMLResponse(body)


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
        account_id=instance.account_id(credentials),
        name=body.name or credentials.username,
        mode=body.mode,
        requests_per_minute=body.requests_per_minute,
        keys=_keys(resources),
    )
    return ConnectionOut.of(conn)


# Listing, inspecting, pausing, resuming and unlinking connections: ops_endpoints.py.
