"""TokenService against an in-memory server with single-use refresh tokens (SQLite, in-process
leases). The cross-process behaviour is in test_token_processes.py, against the sandbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.connections.errors import ConnectionDisconnected, ReauthRequired
from conexapi.connections.schemas import ConnectionOut
from conexapi.connections.service import (
    StaleConnection,
    disconnect,
    link_marketplace_account,
    mark_needs_reauth,
    store_tokens,
)
from conexapi.connections.tokens import Outcome, TokenService, refresh_expiring
from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.kit.locks import LocalLeases, _LocalTable
from conexapi.models import Connection
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.errors import TransientError
from connectors.models import AccountProfile, TokenSet
from tests.connections.fakes import (
    AuthServer,
    FakeMarketplace,
    linked_connection,
    load,
    make_merchant,
)

Sessions = async_sessionmaker[AsyncSession]


def service(sm: Sessions, settings: Settings, server: AuthServer, **kwargs: object) -> TokenService:
    kwargs.setdefault("leases", LocalLeases(_LocalTable()))
    kwargs.setdefault("rejection_grace", 0.3)
    connector = kwargs.pop("connector", None) or FakeMarketplace(server)
    return TokenService(sm, None, connector, settings, **kwargs)  # type: ignore[arg-type]


async def test_fresh_token_is_handed_out_without_a_refresh(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    cid, tokens = await linked_connection(sessionmaker, keys, auth_server, await merchant_factory())
    tokens_service = service(sessionmaker, conn_settings, auth_server)
    assert await tokens_service.access_token(cid) == tokens.access_token.get_secret_value()
    assert auth_server.refresh_calls == 0


async def test_expired_token_is_refreshed_once_for_many_callers_and_saved_encrypted(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    cid, old = await linked_connection(
        sessionmaker, keys, auth_server, await merchant_factory(), expires_at=utcnow()
    )
    before = await load(sessionmaker, cid)
    tokens_service = service(sessionmaker, conn_settings, auth_server)

    got = await asyncio.gather(*(tokens_service.access_token(cid) for _ in range(20)))

    assert auth_server.refresh_calls == 1
    assert auth_server.rejected == 0
    assert len(set(got)) == 1 and got[0] != old.access_token.get_secret_value()
    assert got[0] in auth_server.valid_access  # a token the server accepts
    after = await load(sessionmaker, cid)
    assert after.version == before.version + 1
    assert after.token_expires_at is not None and after.token_expires_at > utcnow()
    async with sessionmaker() as session:
        raw = (await session.execute(text("SELECT credentials FROM connections"))).scalar_one()
    assert got[0] not in raw and "TG-" not in raw
    # the new refresh token was saved: the next expiry refreshes again without a rejection
    # (an expiry in the past: no expiry at all is a token that never expires)
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == cid)
            .values(token_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await tokens_service.access_token(cid) != got[0]
    assert auth_server.refresh_calls == 2 and auth_server.rejected == 0


async def test_invalid_grant_after_a_lost_race_is_recovered_by_re_reading(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    """Two processes whose leases do not see each other (as if the lease had expired)."""
    cid, _ = await linked_connection(
        sessionmaker, keys, auth_server, await merchant_factory(), expires_at=utcnow()
    )
    gate = asyncio.Event()
    slow = FakeMarketplace(auth_server, gate=gate)
    loser = service(sessionmaker, conn_settings, auth_server, connector=slow)
    winner = service(sessionmaker, conn_settings, auth_server)

    losing = asyncio.create_task(loser.access_token(cid))
    await slow.entered.wait()  # the loser read the old refresh token and is calling out
    won = await winner.access_token(cid)
    gate.set()
    lost = await losing

    assert auth_server.rejected == 1  # the loser's call with the spent token
    assert lost == won
    assert (await load(sessionmaker, cid)).status == "active"


async def test_invalid_grant_before_the_winner_saved_is_recovered_within_the_grace(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    """The winner has spent the refresh token but not saved the new pair yet when the
    loser's call is rejected (leases that do not see each other, as if one had expired)."""
    cid, _ = await linked_connection(
        sessionmaker, keys, auth_server, await merchant_factory(), expires_at=utcnow()
    )
    hold = asyncio.Event()
    slow_answer = FakeMarketplace(auth_server, hold_answer=hold)
    winner = service(sessionmaker, conn_settings, auth_server, connector=slow_answer)
    loser = service(sessionmaker, conn_settings, auth_server, rejection_grace=30.0)

    winning = asyncio.create_task(winner.access_token(cid))
    await slow_answer.spent.wait()
    losing = asyncio.create_task(loser.access_token(cid))
    await auth_server.rejection.wait()  # the loser was told invalid_grant...
    hold.set()  # ...and only then does the winner get its answer and save it
    won, lost = await winning, await losing

    assert won == lost
    assert auth_server.refresh_calls == 2 and auth_server.rejected == 1
    assert (await load(sessionmaker, cid)).status == "active"


async def test_revoked_grant_marks_needs_reauth_and_stops_calling(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    cid, _ = await linked_connection(
        sessionmaker, keys, auth_server, await merchant_factory(), expires_at=utcnow()
    )
    auth_server.revoke("1001")
    tokens_service = service(sessionmaker, conn_settings, auth_server)

    with pytest.raises(ReauthRequired):
        await tokens_service.access_token(cid)
    conn = await load(sessionmaker, cid)
    shown = ConnectionOut.of(conn)
    assert shown.status == "needs_reauth" and shown.needs_reauth
    assert shown.last_error and "link the account again" in shown.last_error
    with pytest.raises(ReauthRequired):
        await tokens_service.access_token(cid)
    assert auth_server.refresh_calls == 1


async def test_transient_failure_keeps_a_still_valid_token_and_raises_for_an_expired_one(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    merchant = await merchant_factory()
    # Inside the refresh margin but not yet expired.
    cid, tokens = await linked_connection(
        sessionmaker,
        keys,
        auth_server,
        merchant,
        "2001",
        expires_at=utcnow() + timedelta(seconds=30),
    )
    tokens_service = service(sessionmaker, conn_settings, auth_server)
    auth_server.fail_next.append(TransientError("upstream 503", status_code=503))
    assert await tokens_service.access_token(cid) == tokens.access_token.get_secret_value()
    conn = await load(sessionmaker, cid)
    assert conn.status == "active" and conn.last_refresh_failed_at is not None

    expired, _ = await linked_connection(
        sessionmaker,
        keys,
        auth_server,
        merchant,
        "2002",
        expires_at=utcnow() - timedelta(seconds=1),
    )
    auth_server.fail_next.append(TransientError("upstream 503", status_code=503))
    with pytest.raises(TransientError):
        await tokens_service.access_token(expired)
    assert (await load(sessionmaker, expired)).status == "active"
    # the refresh token was not spent by the failed call: the next attempt works
    assert await tokens_service.access_token(expired) in auth_server.valid_access


async def test_disconnected_and_needs_reauth_raise_without_calling_upstream(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    merchant = await merchant_factory()
    a, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "3001")
    b, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "3002")
    async with unit_of_work(sessionmaker) as session:
        await disconnect(session, merchant, a)
        assert await mark_needs_reauth(session, b, "revoked")
    tokens_service = service(sessionmaker, conn_settings, auth_server)
    with pytest.raises(ConnectionDisconnected):
        await tokens_service.access_token(a)
    with pytest.raises(ReauthRequired) as info:
        await tokens_service.access_token(b)
    assert not isinstance(info.value, ConnectionDisconnected)
    assert auth_server.refresh_calls == 0


async def test_store_tokens_refuses_a_stale_read(
    sessionmaker: Sessions, keys: KeyRing, auth_server: AuthServer, merchant_factory
) -> None:
    cid, _ = await linked_connection(sessionmaker, keys, auth_server, await merchant_factory())
    stale = await load(sessionmaker, cid)
    async with unit_of_work(sessionmaker) as session:
        fresh = await session.get(type(stale), cid)
        assert fresh is not None
        await store_tokens(session, fresh, auth_server.issue("1001"), keys=keys)
    async with unit_of_work(sessionmaker) as session:
        session.add(stale)
        with pytest.raises(StaleConnection):
            await store_tokens(session, stale, auth_server.issue("1001"), keys=keys)


async def test_refresh_job_refreshes_due_connections_and_respects_the_cool_down(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    merchant = await merchant_factory()
    soon = utcnow() + timedelta(seconds=conn_settings.token_refresh_ahead_seconds / 2)
    due, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "4001", soon)
    later, _ = await linked_connection(
        sessionmaker, keys, auth_server, merchant, "4002", utcnow() + timedelta(hours=5)
    )
    failing, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "4003", soon)
    revoked, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "4004", soon)
    auth_server.revoke("4004")
    tokens_service = service(sessionmaker, conn_settings, auth_server)

    # 4003 fails first (connections are taken soonest-expiry first; all four share `soon`,
    # so fail whichever call comes first and check that exactly one failed).
    auth_server.fail_next.append(TransientError("upstream 503", status_code=503))
    first = await refresh_expiring(tokens_service)
    assert first.due == 3
    assert first.refreshed == 1 and first.failed == 1 and first.needs_reauth == 1

    # The failed one is cooling down, the refreshed one is no longer due: nothing to do.
    second = await refresh_expiring(tokens_service)
    assert second.due == 0
    states = {c: (await load(sessionmaker, c)).status for c in (due, later, failing, revoked)}
    assert states[revoked] == "needs_reauth"
    assert (await load(sessionmaker, later)).version == 1

    # After the cool-down the failed one is tried again.
    after = utcnow() + timedelta(seconds=conn_settings.token_refresh_cooldown_seconds + 1)
    third = await refresh_expiring(tokens_service, now=after)
    assert (third.due, third.refreshed, third.failed) == (1, 1, 0)
    assert await tokens_service.ensure_fresh(failing, timedelta(0)) is Outcome.fresh


async def test_refresh_job_entry_point_uses_the_process_token_service(
    conn_settings: Settings, keys: KeyRing, auth_server: AuthServer, merchant_factory
) -> None:
    from conexapi.connections.tokens import get_token_service, refresh_expiring_tokens
    from conexapi.kit.resources import open_resources

    resources = await open_resources(conn_settings)
    try:
        resources.integrations.marketplaces["mercadolibre"] = FakeMarketplace(auth_server)
        merchant = await make_merchant(resources.sessionmaker)
        cid, _ = await linked_connection(
            resources.sessionmaker, keys, auth_server, merchant, "5001", utcnow()
        )
        summary = await refresh_expiring_tokens(resources)
        assert summary["mercadolibre"].refreshed == 1
        assert get_token_service(resources, "mercadolibre") is get_token_service(
            resources, "mercadolibre"
        )
        assert (await load(resources.sessionmaker, cid)).version == 2
    finally:
        await resources.aclose()


async def test_lease_service_down_is_a_transient_error(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    from redis.asyncio import Redis

    from conexapi.kit.locks import RedisLeases

    cid, _ = await linked_connection(
        sessionmaker, keys, auth_server, await merchant_factory(), expires_at=utcnow()
    )
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    try:
        tokens_service = service(
            sessionmaker, conn_settings, auth_server, leases=RedisLeases(unreachable)
        )
        with pytest.raises(TransientError) as info:
            await tokens_service.access_token(cid)
        assert info.value.code == "lease_unavailable"
        assert auth_server.refresh_calls == 0
    finally:
        await unreachable.aclose()


async def test_a_token_without_expiry_never_goes_stale(
    sessionmaker: Sessions,
    conn_settings: Settings,
    keys: KeyRing,
    auth_server: AuthServer,
    merchant_factory,
) -> None:
    # An offline token (no expiry, no refresh token): stale would mean a refresh, and
    # without a refresh token a needs_reauth.
    offline = TokenSet(access_token=SecretStr("offline-token"), expires_at=None, account_id="6001")
    async with unit_of_work(sessionmaker) as session:
        conn = await link_marketplace_account(
            session,
            await merchant_factory(),
            "mercadolibre",
            offline,
            AccountProfile(account_id="6001"),
            keys=keys,
        )
    tokens_service = service(sessionmaker, conn_settings, auth_server)
    assert await tokens_service.access_token(conn.id) == "offline-token"
    assert await tokens_service.ensure_fresh(conn.id, timedelta(days=3650)) is Outcome.fresh
    assert (await refresh_expiring(tokens_service)).due == 0
    assert auth_server.refresh_calls == 0
    assert (await load(sessionmaker, conn.id)).status == "active"
