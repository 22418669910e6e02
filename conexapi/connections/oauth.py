"""The OAuth2 consent: start (state + PKCE kept server-side) and callback (check, exchange, link).

The ``state`` is random (authlib's generator), single-use (consumed by a conditional
UPDATE before anything else happens), short-lived, and bound to the merchant and user who
started it; only its SHA-256 is stored. The upstream calls (code exchange, profile) run
outside any transaction: the state is consumed and committed first, the account linked
in a second short transaction.

Every consent is also bound to one browser, by an HttpOnly cookie whose hash is stored
with the state, and the callback refuses one without it: otherwise whoever started a
consent could have someone else's browser finish it (a seller already signed in at the
marketplace, who approved this application before, is sent straight back without a
question) and get that seller linked to their merchant. A browser start binds the
browser that asked. An API start (the caller hands the URL to the seller) cannot know
the seller's browser, so its URL is a *consent link* to our own start page: the page
names the merchant the account will be linked to, and only its "continue" button (a
same-site POST that carries the page's cookie, so another site cannot submit it for the
visitor) binds the state to that browser and sends it on to the marketplace. Merely
opening the link binds nothing (link scanners open links), the marketplace URL is never
shown to the API caller, and a consent continued in one browser cannot be finished in
another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from authlib.common.security import generate_token
from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.connections.consent_checks import (
    binding_cookie_name,
    bound_to,
    check_return_to,
    hash_value,
    new_binding,
)
from conexapi.connections.errors import AccountLinkedElsewhere
from conexapi.connections.service import (
    StaleConnection,
    link_marketplace_account,
    store_tokens,
)
from conexapi.db import unit_of_work
from conexapi.kit.crypto import DecryptionError, KeyRing
from conexapi.kit.errors import Forbidden
from conexapi.models import Connection, ConnectionStatus, Merchant, OAuthState
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.base import MarketplaceConnector
from connectors.errors import ConnectorError, TransientError
from connectors.models import TokenSet
from connectors.registry import UnknownConnector, get_connector

log = structlog.get_logger(__name__)

#: 48 characters of [A-Za-z0-9]: about 285 bits.
STATE_LENGTH = 48
#: Expired states are kept this long (for a clear "expired" message), then deleted.
STATE_RETENTION = timedelta(days=1)

_UPSTREAM_ERROR = re.compile(r"^[a-z0-9_]{1,40}$")


def label(connector: str) -> str:
    """The name a person knows the connector's service by (its spec's ``label``)."""
    try:
        return get_connector(connector).label or connector
    except UnknownConnector:
        return connector


# --- start ----------------------------------------------------------------------------------


#: Our page an API-started consent is handed out as (see the module's docstring).
LINK_PATH = "/oauth/{connector}/start"


def consent_link(settings: Settings, connector: str, state: str) -> str:
    path = LINK_PATH.format(connector=connector)
    return f"{settings.public_url.rstrip('/')}{path}?{urlencode({'state': state})}"


@dataclass(frozen=True)
class ConsentStart:
    #: Where to send the browser: the marketplace's consent (browser starts) or our
    #: consent link (API starts; the browser that continues it there gets bound).
    authorization_url: str
    expires_at: datetime
    #: For browser starts: the cookie (name, value) binding the consent to this browser.
    cookie: tuple[str, str] | None = None


async def start_consent(
    session: AsyncSession,
    connector: MarketplaceConnector,
    settings: Settings,
    keys: KeyRing,
    *,
    merchant_id: int,
    user_id: str | None,
    return_to: str | None,
    site: str | None,
    bind_browser: bool,
) -> ConsentStart:
    return_to = check_return_to(return_to, settings)
    if await session.get(Merchant, merchant_id) is None:
        raise Forbidden("Unknown merchant.", code="unknown_merchant")
    state = generate_token(STATE_LENGTH)
    request = connector.authorization_request(state=state, site=site)
    if request.state != state:
        raise RuntimeError("the connector did not put our state in the authorization URL")
    now = utcnow()
    expires_at = now + timedelta(seconds=settings.oauth_state_ttl_seconds)
    cookie = None
    binding_hash = None
    if bind_browser:
        binding = new_binding()
        binding_hash = hash_value(binding)
        cookie = (binding_cookie_name(state), binding)
    await session.execute(delete(OAuthState).where(OAuthState.expires_at < now - STATE_RETENTION))
    session.add(
        OAuthState(
            state_hash=hash_value(state),
            connector=connector.name,
            merchant_id=merchant_id,
            user_id=user_id,
            code_verifier=keys.encrypt_str(request.code_verifier),
            return_to=return_to,
            site=site,
            browser_binding=binding_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    log.info(
        "consent_started",
        connector=connector.name,
        merchant_id=merchant_id,
        user_id=user_id,
        browser=bind_browser,
    )
    url = request.url if bind_browser else consent_link(settings, connector.name, state)
    return ConsentStart(url, expires_at, cookie)


# --- the consent link's page (API starts) ---------------------------------------------------


@dataclass(frozen=True)
class ConsentLink:
    """A consent waiting on its start page for a browser to continue it."""

    connector: str
    merchant_name: str
    expires_at: datetime


class ConsentLinkRefused(Exception):
    """The consent link cannot be shown or continued; ``result`` says why, for the page."""

    def __init__(self, result: ConsentResult) -> None:
        super().__init__(result.code)
        self.result = result


_NEW_LINK = "Ask for a new link."


def _refused(connector: str, code: str, message: str) -> ConsentLinkRefused:
    return ConsentLinkRefused(_fail(connector, code, message))


def _check_waiting(row: OAuthState | None, connector: str, cookie: str | None) -> OAuthState:
    """``row`` if this browser may still continue the consent, else why not."""
    if row is None or row.connector != connector:
        raise _refused(connector, "state_invalid", f"This sign-in link is not valid. {_NEW_LINK}")
    if row.consumed_at is not None:
        raise _refused(
            connector, "state_replayed", f"This sign-in link was already used. {_NEW_LINK}"
        )
    if row.expires_at <= utcnow():
        raise _refused(connector, "state_expired", f"This sign-in link has expired. {_NEW_LINK}")
    if row.browser_binding is not None and not bound_to(cookie, row.browser_binding):
        raise _refused(
            connector,
            "state_browser_mismatch",
            f"This sign-in link is already being used in another browser. {_NEW_LINK}",
        )
    return row


async def _waiting(
    session: AsyncSession, connector: str, state: str | None, cookie: str | None
) -> tuple[str, OAuthState]:
    if not state or len(state) > 200:
        raise _refused(connector, "state_invalid", f"This sign-in link is not valid. {_NEW_LINK}")
    row = await session.scalar(select(OAuthState).where(OAuthState.state_hash == hash_value(state)))
    return state, _check_waiting(row, connector, cookie)


async def open_consent_link(
    session: AsyncSession, connector: str, *, state: str | None, cookie: str | None
) -> ConsentLink:
    """What the start page shows. Binds nothing (link scanners open links): continuing does."""
    _, row = await _waiting(session, connector, state, cookie)
    merchant = await session.get(Merchant, row.merchant_id)
    return ConsentLink(connector, merchant.name if merchant else "", row.expires_at)


async def continue_consent_link(
    session: AsyncSession,
    connector: MarketplaceConnector,
    keys: KeyRing,
    *,
    state: str | None,
    cookie: str | None,
) -> str:
    """Bind the consent to the browser holding ``cookie``; the marketplace URL to send it to.

    The cookie is set by the start page and, being SameSite, comes with the page's own
    POST only: a form another site submits for the visitor arrives without it.
    """
    name = connector.name
    if not cookie:
        raise _refused(
            name,
            "state_browser_mismatch",
            "This browser did not open the sign-in link, or refuses cookies. "
            "Open the link again and continue from its page.",
        )
    state, row = await _waiting(session, name, state, cookie)
    # A fresh PKCE verifier: the marketplace URL exists only from here, for this browser.
    request = connector.authorization_request(state=state, site=row.site)
    if request.state != state:
        raise RuntimeError("the connector did not put our state in the authorization URL")
    binding = hash_value(cookie)
    bound = cast(
        CursorResult[Any],
        await session.execute(
            update(OAuthState)
            .where(
                OAuthState.id == row.id,
                OAuthState.consumed_at.is_(None),
                OAuthState.expires_at > utcnow(),
                or_(OAuthState.browser_binding.is_(None), OAuthState.browser_binding == binding),
            )
            .values(browser_binding=binding, code_verifier=keys.encrypt_str(request.code_verifier))
            .execution_options(synchronize_session=False)
        ),
    )
    if bound.rowcount != 1:  # another browser, the callback or the clock got there first
        await session.refresh(row)
        _check_waiting(row, name, cookie)
        raise _refused(name, "state_invalid", f"This sign-in link is not valid. {_NEW_LINK}")
    log.info("consent_link_continued", connector=name, merchant_id=row.merchant_id)
    return request.url


# --- callback -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentResult:
    connector: str
    ok: bool
    #: ``linked`` or an error code.
    code: str
    message: str
    #: Set only once the state was verified: where the browser goes back to.
    return_to: str | None = None
    connection_id: int | None = None

    def redirect_url(self) -> str | None:
        if self.return_to is None:
            return None
        parts = urlsplit(self.return_to)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append(("connector", self.connector))
        if self.ok:
            query += [("status", "linked"), ("connection_id", str(self.connection_id))]
        else:
            query += [("status", "error"), ("error", self.code)]
        return urlunsplit(parts._replace(query=urlencode(query)))


def _fail(connector: str, code: str, message: str, return_to: str | None = None) -> ConsentResult:
    return ConsentResult(connector, False, code, message, return_to)


async def finish_consent(
    sessionmaker: async_sessionmaker[AsyncSession],
    connector: MarketplaceConnector,
    keys: KeyRing,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    cookies: dict[str, str],
) -> ConsentResult:
    name = connector.name
    who = label(name)
    restart = "Start linking the account again."
    if not state or len(state) > 200:
        return _fail(name, "state_invalid", f"This sign-in link is not valid. {restart}")

    now = utcnow()
    async with unit_of_work(sessionmaker) as session:
        row = await session.scalar(
            select(OAuthState).where(OAuthState.state_hash == hash_value(state))
        )
        if row is None or row.connector != name:
            log.warning("consent_state_unknown", connector=name)
            return _fail(name, "state_invalid", f"This sign-in link is not valid. {restart}")
        consumed = cast(
            CursorResult[Any],
            await session.execute(
                update(OAuthState)
                .where(
                    OAuthState.id == row.id,
                    OAuthState.consumed_at.is_(None),
                    OAuthState.expires_at > now,
                )
                .values(consumed_at=now)
                .execution_options(synchronize_session=False)
            ),
        )
        state_id, merchant_id, user_id = row.id, row.merchant_id, row.user_id
        return_to, binding, sealed_verifier = row.return_to, row.browser_binding, row.code_verifier
        if consumed.rowcount != 1:
            if row.consumed_at is not None:
                log.warning("consent_state_replayed", connector=name, merchant_id=merchant_id)
                return _fail(
                    name, "state_replayed", f"This sign-in link was already used. {restart}"
                )
            log.info("consent_state_expired", connector=name, merchant_id=merchant_id)
            return _fail(name, "state_expired", f"This sign-in link has expired. {restart}")

    async def finish(result: ConsentResult) -> ConsentResult:
        async with unit_of_work(sessionmaker) as session:
            await session.execute(
                update(OAuthState)
                .where(OAuthState.id == state_id)
                .values(outcome=result.code[:32])
                .execution_options(synchronize_session=False)
            )
        log.info(
            "consent_finished",
            connector=name,
            merchant_id=merchant_id,
            user_id=user_id,
            outcome=result.code,
            connection_id=result.connection_id,
        )
        return result

    if not bound_to(cookies.get(binding_cookie_name(state)), binding):
        # Not the browser that started it (or a consent link never continued from its
        # page): do not send it anywhere we were told to.
        return await finish(
            _fail(
                name,
                "state_browser_mismatch",
                f"This sign-in was started in another browser. {restart}",
            )
        )
    if error:
        if error == "access_denied":
            return await finish(
                _fail(
                    name,
                    "access_denied",
                    f"Access was not granted on {who}; nothing was linked.",
                    return_to,
                )
            )
        shown = error if _UPSTREAM_ERROR.match(error) else "unknown"
        return await finish(
            _fail(
                name,
                "authorization_failed",
                f"{who} did not authorize the account ({shown}); nothing was linked.",
                return_to,
            )
        )
    if not code or len(code) > 500:
        return await finish(
            _fail(name, "code_missing", f"{who} sent no authorization code. {restart}", return_to)
        )
    try:
        verifier = keys.decrypt_str(sealed_verifier)
    except DecryptionError:
        return await finish(
            _fail(name, "state_invalid", f"This sign-in link is not valid. {restart}", return_to)
        )

    try:
        token_set = await connector.exchange_code(code, verifier)
    except TransientError as exc:
        log.warning("consent_exchange_failed", connector=name, error_class=exc.kind)
        return await finish(
            _fail(
                name,
                "upstream_unavailable",
                f"{who} could not be reached to finish linking. {restart}",
                return_to,
            )
        )
    except ConnectorError as exc:
        log.warning(
            "consent_exchange_failed", connector=name, error_class=exc.kind, error_code=exc.code
        )
        return await finish(
            _fail(
                name,
                "exchange_failed",
                f"{who} did not accept the authorization; nothing was linked. {restart}",
                return_to,
            )
        )
    try:
        profile = await connector.get_profile(token_set.access_token.get_secret_value())
    except ConnectorError as exc:
        log.warning("consent_profile_failed", connector=name, error_class=exc.kind)
        return await finish(
            _fail(
                name,
                "profile_failed",
                f"{who} did not say which account was authorized; nothing was linked. {restart}",
                return_to,
            )
        )
    if token_set.account_id and token_set.account_id != profile.account_id:
        return await finish(
            _fail(name, "account_mismatch", "The authorized account is inconsistent.", return_to)
        )

    try:
        async with unit_of_work(sessionmaker) as session:
            conn = await link_marketplace_account(
                session, merchant_id, name, token_set, profile, keys=keys
            )
            connection_id = conn.id
    except AccountLinkedElsewhere as exc:
        await _keep_other_link_alive(sessionmaker, name, profile.account_id, token_set, keys)
        return await finish(_fail(name, exc.code, exc.message, return_to))
    return await finish(
        ConsentResult(
            name,
            True,
            "linked",
            f"Your {who} account {profile.nickname or profile.account_id} is linked.",
            return_to,
            connection_id,
        )
    )


async def _keep_other_link_alive(
    sessionmaker: async_sessionmaker[AsyncSession],
    connector: str,
    account_id: str,
    token_set: TokenSet,
    keys: KeyRing,
) -> None:
    """Give the merchant that owns the account the pair this refused consent produced.

    Whether a new consent invalidates the refresh token of an earlier one is not
    documented (EXTERNAL_APIS §1.2 says only the newest refresh token works); assuming the
    stricter case, the owner's connection would otherwise die because someone else tried
    to link the same seller. The requester gets nothing.
    """
    async with unit_of_work(sessionmaker) as session:
        conn = await session.scalar(
            select(Connection).where(
                Connection.connector == connector, Connection.external_account_id == account_id
            )
        )
        if conn is None or conn.status not in (ConnectionStatus.active, ConnectionStatus.paused):
            return
        try:
            await store_tokens(session, conn, token_set, keys=keys)
        except StaleConnection:  # a concurrent writer won: its pair is at least as new
            return
        log.info("consent_refused_pair_given_to_owner", connection_id=conn.id)
