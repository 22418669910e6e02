"""The one place that hands out a valid marketplace access token.

Mercado Libre's refresh tokens work once: two processes refreshing with the same one
leave one of them with ``invalid_grant`` and, handled naively, a seller disconnected for
nothing. So a refresh goes through four gates:

1. **single-flight** in the process: concurrent callers for one connection share one
   refresh;
2. a **lease** per connection across processes (Redis ``SET NX PX``, released by
   compare-and-delete; in-process when embedded);
3. **re-read** after taking the lease: if another process refreshed meanwhile, its token
   is used and no call is made;
4. the new pair is **saved** (compare-and-set on ``version``, committed) **before** the
   token is handed out, so a crash after the refresh cannot lose the new refresh token.

An ``invalid_grant`` is checked against the database, for a few seconds: if the row moves
on, a concurrent refresh won and its token is used. Only a rejection of the token still
stored marks the connection ``needs_reauth``; its runs then wait for the merchant to link
it again.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.connections.errors import (
    ConnectionDisconnected,
    ConnectionNotFound,
    ReauthRequired,
)
from conexapi.connections.service import (
    StoredTokens,
    erp_credentials,
    keyring,
    link_erp_account,
    link_marketplace_account,
    mark_needs_reauth,
    open_tokens,
    record_refresh_failure,
    save_sealed_tokens,
    seal_tokens,
    store_tokens,
)
from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.kit.locks import Leases, LeaseTimeout, SingleFlight, leases_for
from conexapi.kit.resources import Resources
from conexapi.models import Connection, ConnectionStatus
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.base import MarketplaceConnector
from connectors.errors import AuthError, ConnectorError, TransientError

log = structlog.get_logger(__name__)

REFRESHES = Counter(
    "conexapi_token_refresh_total",
    "Access-token refreshes by outcome",
    ["connector", "outcome"],
)


class Outcome(StrEnum):
    #: A refresh call was made and its pair saved.
    refreshed = "refreshed"
    #: Fresh already (another caller or process refreshed it): no call made.
    fresh = "fresh"
    #: The refresh failed transiently; the current token has not expired yet and is used.
    kept = "kept"


@dataclass(frozen=True)
class _Row:
    id: int
    connector: str
    account_id: str
    status: str
    version: int
    credentials: str | None
    expires_at: datetime | None


class TokenService:
    """Build one per process (it holds the single-flight table) and share it."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis | None,
        connector: MarketplaceConnector,
        settings: Settings,
        *,
        keys: KeyRing | None = None,
        leases: Leases | None = None,
        key_prefix: str = "conexapi:",
        lease_ttl: float = 90.0,
        lease_wait: float = 60.0,
        rejection_grace: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.connector = connector
        self.settings = settings
        self.keys = keys or KeyRing.parse(settings.encryption_keys)
        self.leases = leases or leases_for(redis, key_prefix + "lease:")
        self.margin = timedelta(seconds=settings.token_refresh_margin_seconds)
        # The lease must outlive a refresh call (HTTP timeout 30 s) with room to save;
        # if it expired mid-refresh a second holder could spend the same refresh token.
        self.lease_ttl = lease_ttl
        self.lease_wait = lease_wait
        self.rejection_grace = rejection_grace
        self._flight: SingleFlight[tuple[str, Outcome]] = SingleFlight()

    # --- public -------------------------------------------------------------------------

    async def access_token(self, connection_id: int) -> str:
        """A valid access token for the connection, refreshing it if it is (nearly) expired.

        Raises :class:`ReauthRequired` (or its subclass :class:`ConnectionDisconnected`)
        when the connection needs the merchant, and :class:`~connectors.errors.TransientError`
        when the token has expired and cannot be refreshed right now.
        """
        row = await self._read(connection_id)
        self._check(row)
        if self._fresh(row, self.margin):
            return self._open(row).access_token
        token, _ = await self._flight.run(connection_id, lambda: self._refresh(connection_id))
        return token

    async def ensure_fresh(self, connection_id: int, within: timedelta) -> Outcome:
        """Refresh unless the token stays valid for ``within`` (the periodic job)."""
        row = await self._read(connection_id)
        self._check(row)
        if self._fresh(row, within):
            return Outcome.fresh
        _, outcome = await self._flight.run(
            connection_id, lambda: self._refresh(connection_id, within)
        )
        return outcome

    # --- the refresh ----------------------------------------------------------------------

    async def _refresh(
        self, connection_id: int, within: timedelta | None = None
    ) -> tuple[str, Outcome]:
        within = within or self.margin
        try:
            async with self.leases.hold(
                f"token:{connection_id}", ttl=self.lease_ttl, wait=self.lease_wait
            ):
                return await self._refresh_held(connection_id, within)
        except RedisError as exc:
            raise TransientError(
                f"the lease service is unavailable ({type(exc).__name__})",
                code="lease_unavailable",
            ) from None
        except LeaseTimeout:
            row = await self._read(connection_id)
            self._check(row)
            if self._fresh(row, self.margin):
                return self._open(row).access_token, Outcome.fresh
            raise TransientError(
                "another process has been refreshing this token for too long",
                code="token_refresh_busy",
            ) from None

    async def _refresh_held(self, connection_id: int, within: timedelta) -> tuple[str, Outcome]:
        row = await self._read(connection_id)
        self._check(row)
        if self._fresh(row, within):
            REFRESHES.labels(row.connector, "fresh_after_lock").inc()
            return self._open(row).access_token, Outcome.fresh
        stored = self._open(row)
        if not stored.refresh_token:
            await self._needs_reauth(row, "No refresh token is stored; link the account again.")
            raise ReauthRequired(row.id, "no_refresh_token")

        started = utcnow()
        try:
            fresh = await self.connector.refresh(stored.refresh_token)
        except AuthError as exc:
            return await self._after_rejection(row, exc)
        except ConnectorError as exc:
            REFRESHES.labels(row.connector, "failed").inc()
            reason = f"Token refresh failed ({exc.kind}{_code(exc)}); will retry."
            async with unit_of_work(self.sessionmaker) as session:
                await record_refresh_failure(session, row.id, reason, started)
            log.warning(
                "token_refresh_failed",
                connection_id=row.id,
                error_class=exc.kind,
                error_code=exc.code,
            )
            if row.expires_at is None or row.expires_at > utcnow():
                return stored.access_token, Outcome.kept
            raise

        sealed = seal_tokens(
            self.keys,
            fresh.access_token.get_secret_value(),
            fresh.refresh_token.get_secret_value() if fresh.refresh_token else stored.refresh_token,
            fresh.scope or stored.scope,
        )
        # Saved and committed before anyone sees the new token: the old refresh token is
        # spent, so losing this write would lose the connection.
        async with unit_of_work(self.sessionmaker) as session:
            version = await save_sealed_tokens(
                session, row.id, row.version, sealed, fresh.expires_at
            )
        if version is None:
            # A re-link, unlink or re-authorization flag wrote the row meanwhile; its
            # state wins over our pair.
            REFRESHES.labels(row.connector, "conflict").inc()
            log.warning("token_refresh_conflict", connection_id=row.id)
            now_row = await self._read(connection_id)
            self._check(now_row)
            if self._fresh(now_row, self.margin):
                return self._open(now_row).access_token, Outcome.fresh
            raise TransientError(
                "the connection changed during the token refresh", code="token_refresh_conflict"
            )
        REFRESHES.labels(row.connector, "refreshed").inc()
        log.info(
            "token_refreshed",
            connection_id=row.id,
            expires_at=fresh.expires_at.isoformat() if fresh.expires_at else None,
            version=version,
        )
        return fresh.access_token.get_secret_value(), Outcome.refreshed

    async def _after_rejection(self, row: _Row, exc: AuthError) -> tuple[str, Outcome]:
        """A rejected refresh token: a lost race, or a grant that is really gone.

        The winner of a race may still be between its refresh answer and its save (if the
        lease was lost, say), so the row is re-read for a short grace period before the
        connection is flagged; a revoked grant only waits that much longer to be flagged.
        """
        deadline = time.monotonic() + self.rejection_grace
        delay = 0.05
        while True:
            now_row = await self._read(row.id)
            if now_row.version != row.version:
                return self._recovered(now_row)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
        reason = f"The account's authorization was rejected{_code(exc)}; link the account again."
        async with unit_of_work(self.sessionmaker) as session:
            flagged = await mark_needs_reauth(session, row.id, reason, expected_version=row.version)
        if not flagged:  # the row moved at the last moment
            return self._recovered(await self._read(row.id))
        REFRESHES.labels(row.connector, "rejected").inc()
        raise ReauthRequired(row.id, exc.code or "refresh_rejected")

    def _recovered(self, now_row: _Row) -> tuple[str, Outcome]:
        """Someone saved a newer pair (or re-linked, or flagged it) after our read."""
        self._check(now_row)
        if not self._fresh(now_row, self.margin):
            raise TransientError(
                "the connection changed during the token refresh", code="token_refresh_conflict"
            )
        REFRESHES.labels(now_row.connector, "race_recovered").inc()
        log.info("token_refresh_race_recovered", connection_id=now_row.id)
        return self._open(now_row).access_token, Outcome.fresh

    async def _needs_reauth(self, row: _Row, reason: str) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            await mark_needs_reauth(session, row.id, reason, expected_version=row.version)

    # --- helpers --------------------------------------------------------------------------

    async def _read(self, connection_id: int) -> _Row:
        async with self.sessionmaker() as session:
            conn = await session.get(Connection, connection_id)
            if conn is None:
                raise ConnectionNotFound()
            if conn.connector != self.connector.name:
                raise ValueError(
                    f"connection {connection_id} is a {conn.connector!r} connection, "
                    f"not {self.connector.name!r}"
                )
            return _Row(
                id=conn.id,
                connector=conn.connector,
                account_id=conn.external_account_id,
                status=conn.status,
                version=conn.version,
                credentials=conn.credentials,
                expires_at=conn.token_expires_at,
            )

    @staticmethod
    def _check(row: _Row) -> None:
        if row.status == ConnectionStatus.disconnected or row.credentials is None:
            raise ConnectionDisconnected(row.id)
        if row.status == ConnectionStatus.needs_reauth:
            raise ReauthRequired(row.id)

    @staticmethod
    def _fresh(row: _Row, within: timedelta) -> bool:
        # No expiry: a token that never expires (the row's credentials are checked apart).
        return row.expires_at is None or row.expires_at - within > utcnow()

    def _open(self, row: _Row) -> StoredTokens:
        assert row.credentials is not None
        return open_tokens(self.keys, row.credentials)


def _code(exc: ConnectorError) -> str:
    return f": {exc.code}" if exc.code else ""


# --- the periodic job -----------------------------------------------------------------------


@dataclass
class RefreshSummary:
    due: int = 0
    refreshed: int = 0
    fresh: int = 0
    needs_reauth: int = 0
    failed: int = 0


async def refresh_expiring(
    tokens: TokenService, *, now: datetime | None = None, limit: int = 500
) -> RefreshSummary:
    """Refresh the tokens of ``tokens.connector`` that expire soon.

    Connections whose last refresh failed less than the cool-down ago are left alone, so
    an upstream outage is not hammered every beat. Runs are sequential: refreshes are few
    and each already holds a lease.
    """
    settings = tokens.settings
    now = now or utcnow()
    ahead = timedelta(seconds=settings.token_refresh_ahead_seconds)
    cooldown = timedelta(seconds=settings.token_refresh_cooldown_seconds)
    async with tokens.sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Connection.id)
                .where(
                    Connection.connector == tokens.connector.name,
                    Connection.status.in_((ConnectionStatus.active, ConnectionStatus.paused)),
                    Connection.credentials.is_not(None),
                    Connection.token_expires_at <= now + ahead,
                    or_(
                        Connection.last_refresh_failed_at.is_(None),
                        Connection.last_refresh_failed_at <= now - cooldown,
                    ),
                )
                .order_by(Connection.token_expires_at)
                .limit(limit)
            )
        )
    summary = RefreshSummary(due=len(ids))
    for connection_id in ids:
        try:
            outcome = await tokens.ensure_fresh(connection_id, ahead)
        except ReauthRequired:
            summary.needs_reauth += 1
            continue
        except ConnectorError as exc:
            summary.failed += 1
            log.warning(
                "token_refresh_job_failed",
                connection_id=connection_id,
                error_class=exc.kind,
                error_code=exc.code,
            )
            continue
        if outcome is Outcome.refreshed:
            summary.refreshed += 1
        elif outcome is Outcome.fresh:
            summary.fresh += 1
        else:
            summary.failed += 1
    log.info("token_refresh_job", **summary.__dict__)
    return summary


async def refresh_expiring_tokens(resources: Resources) -> dict[str, RefreshSummary]:
    """The periodic job's body: :func:`refresh_expiring` for every marketplace connector."""
    return {
        name: await refresh_expiring(get_token_service(resources, name))
        for name in resources.integrations.marketplaces
    }


# --- per-process wiring ---------------------------------------------------------------------


def get_token_service(resources: Resources, connector_name: str) -> TokenService:
    """This process's TokenService for a marketplace connector (built once, then kept in
    ``Resources.token_services``).

    Single-flight only works if every job of the process shares the instance.
    """
    found = resources.token_services.get(connector_name)
    if found is not None:
        return found
    connector = resources.integrations.marketplace(connector_name)
    service = TokenService(resources.sessionmaker, resources.redis, connector, resources.settings)
    resources.token_services[connector_name] = service
    return service


__all__ = [
    "ConnectionDisconnected",
    "Outcome",
    "ReauthRequired",
    "RefreshSummary",
    "TokenService",
    "erp_credentials",
    "get_token_service",
    "keyring",
    "link_erp_account",
    "link_marketplace_account",
    "mark_needs_reauth",
    "refresh_expiring",
    "refresh_expiring_tokens",
    "store_tokens",
]
