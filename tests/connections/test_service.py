from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from conexapi.connections.errors import (
    AccountLinkedElsewhere,
    ConnectionDisconnected,
    ConnectionNotFound,
    ReauthRequired,
)
from conexapi.connections.rotation import rotate_keys
from conexapi.connections.service import (
    disconnect,
    erp_credentials,
    link_erp_account,
    link_marketplace_account,
    mark_needs_reauth,
    open_tokens,
)
from conexapi.db import unit_of_work
from conexapi.kit.crypto import DecryptionError, KeyRing, generate_key
from conexapi.models import OAuthState, OrderSync, Pipeline
from conexapi.models.base import utcnow
from conexapi.settings import Settings
from connectors.models import AccountProfile, ErpCredentials
from tests.connections.fakes import AuthServer, linked_connection, load

Sessions = async_sessionmaker[AsyncSession]


async def raw_credentials(sm: Sessions, connection_id: int) -> str | None:
    async with sm() as session:
        return (
            await session.execute(
                text("SELECT credentials FROM connections WHERE id = :id"), {"id": connection_id}
            )
        ).scalar_one()


async def test_relinking_updates_the_same_connection_and_another_merchant_is_refused(
    sessionmaker: Sessions, keys: KeyRing, auth_server: AuthServer, merchant_factory
) -> None:
    owner, other = await merchant_factory(), await merchant_factory()
    cid, _ = await linked_connection(sessionmaker, keys, auth_server, owner, "777")
    async with unit_of_work(sessionmaker) as session:
        await mark_needs_reauth(session, cid, "revoked")

    again = auth_server.issue("777")
    async with unit_of_work(sessionmaker) as session:
        conn = await link_marketplace_account(
            session, owner, "mercadolibre", again, AccountProfile(account_id="777"), keys=keys
        )
        assert conn.id == cid
    relinked = await load(sessionmaker, cid)
    assert relinked.status == "active" and relinked.last_error is None
    assert relinked.credentials is not None
    assert (
        open_tokens(keys, relinked.credentials).access_token
        == again.access_token.get_secret_value()
    )

    with pytest.raises(AccountLinkedElsewhere):
        async with unit_of_work(sessionmaker) as session:
            await link_marketplace_account(
                session,
                other,
                "mercadolibre",
                auth_server.issue("777"),
                AccountProfile(account_id="777"),
                keys=keys,
            )
    async with sessionmaker() as session:
        count = (await session.execute(text("SELECT COUNT(*) FROM connections"))).scalar_one()
    assert count == 1


async def test_erp_credentials_are_encrypted_and_decrypted(
    sessionmaker: Sessions, keys: KeyRing, merchant_factory
) -> None:
    merchant = await merchant_factory()
    creds = ErpCredentials(username="api@tienda.co", access_key=SecretStr("S1igo-Access-Key=="))
    async with unit_of_work(sessionmaker) as session:
        conn = await link_erp_account(
            session, merchant, "siigo", creds, "api@tienda.co", "Tienda SAS", keys=keys
        )
        cid = conn.id
    raw = await raw_credentials(sessionmaker, cid)
    assert raw and "S1igo-Access-Key" not in raw and "api@tienda.co" not in raw
    async with sessionmaker() as session:
        back = await erp_credentials(session, cid, keys=keys)
    assert back.username == "api@tienda.co"
    assert back.access_key.get_secret_value() == "S1igo-Access-Key=="

    async with unit_of_work(sessionmaker) as session:
        await mark_needs_reauth(session, cid, "Siigo rejected the credentials")
    async with sessionmaker() as session:
        with pytest.raises(ReauthRequired):
            await erp_credentials(session, cid, keys=keys)


async def test_disconnect_deletes_secrets_stops_pipelines_and_keeps_history(
    sessionmaker: Sessions, keys: KeyRing, auth_server: AuthServer, merchant_factory
) -> None:
    merchant, stranger = await merchant_factory(), await merchant_factory()
    source, _ = await linked_connection(sessionmaker, keys, auth_server, merchant, "901")
    async with unit_of_work(sessionmaker) as session:
        target = await link_erp_account(
            session,
            merchant,
            "siigo",
            ErpCredentials(username="u@x.co", access_key=SecretStr("k" * 20)),
            "u@x.co",
            "X",
            keys=keys,
        )
        pipeline = Pipeline(
            merchant_id=merchant,
            name="ML → Siigo",
            source_connection_id=source,
            target_connection_id=target.id,
            settings={},
        )
        session.add(pipeline)
        await session.flush()
        session.add(
            OrderSync(pipeline_id=pipeline.id, external_order_id="2000001", state="invoiced")
        )

    async with unit_of_work(sessionmaker) as session:
        with pytest.raises(ConnectionNotFound):  # not the stranger's to unlink
            await disconnect(session, stranger, source)
    async with unit_of_work(sessionmaker) as session:
        shown = await disconnect(session, merchant, source)
        assert shown.status == "disconnected"

    assert await raw_credentials(sessionmaker, source) is None
    conn = await load(sessionmaker, source)
    assert conn.token_expires_at is None
    async with sessionmaker() as session:
        assert (await session.scalar(select(Pipeline.status))) == "stopped"
        assert (await session.scalar(select(OrderSync.state))) == "invoiced"
        with pytest.raises(ConnectionDisconnected):
            await erp_credentials(session, source, keys=keys)


async def test_key_rotation_keeps_old_data_readable_and_re_encrypts_it(
    sessionmaker: Sessions, keys: KeyRing, key: str, auth_server: AuthServer, merchant_factory
) -> None:
    old_ring = keys
    merchant = await merchant_factory()
    cid, tokens = await linked_connection(sessionmaker, old_ring, auth_server, merchant, "55")
    async with unit_of_work(sessionmaker) as session:
        erp = await link_erp_account(
            session,
            merchant,
            "siigo",
            ErpCredentials(username="r@x.co", access_key=SecretStr("rotate-me-please")),
            "r@x.co",
            "R",
            keys=old_ring,
        )
        session.add(
            OAuthState(
                state_hash="a" * 64,
                connector="mercadolibre",
                merchant_id=merchant,
                code_verifier=old_ring.encrypt_str("verifier-under-old-key"),
                expires_at=utcnow().replace(year=utcnow().year + 1),
            )
        )
    before = await raw_credentials(sessionmaker, cid)
    assert before is not None

    new_key = generate_key()
    both = KeyRing.parse(f"{new_key},{key}")
    # Readable with the old key second in the list, before any rotation.
    assert open_tokens(both, before).access_token == tokens.access_token.get_secret_value()

    report = await rotate_keys(sessionmaker, both)
    assert report.rotated == 2 and report.unreadable == [] and report.states_rotated == 1

    after = await raw_credentials(sessionmaker, cid)
    assert after is not None and after != before
    only_new = KeyRing([new_key])
    assert open_tokens(only_new, after).access_token == tokens.access_token.get_secret_value()
    with pytest.raises(DecryptionError):
        open_tokens(old_ring, after)
    async with sessionmaker() as session:
        creds = await erp_credentials(session, erp.id, keys=only_new)
        verifier = await session.scalar(select(OAuthState.code_verifier))
    assert creds.access_key.get_secret_value() == "rotate-me-please"
    assert verifier is not None and only_new.decrypt_str(verifier) == "verifier-under-old-key"

    again = await rotate_keys(sessionmaker, both)  # idempotent
    assert again.rotated == 0 and again.already_current == 2


async def test_rotate_keys_command(
    sessionmaker: Sessions,
    keys: KeyRing,
    key: str,
    auth_server: AuthServer,
    merchant_factory,
    conn_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conexapi import cli
    from conexapi.settings import get_settings

    cid, tokens = await linked_connection(sessionmaker, keys, auth_server, await merchant_factory())
    new_key = generate_key()
    monkeypatch.setenv("CONEXAPI_ENV", "test")
    monkeypatch.setenv("CONEXAPI_DATABASE_URL", conn_settings.database_url)
    monkeypatch.setenv("CONEXAPI_ENCRYPTION_KEYS", f"{new_key},{key}")
    get_settings.cache_clear()
    try:
        # The command runs its own event loop: keep it off the test's loop.
        result = await asyncio.to_thread(CliRunner().invoke, cli.cli, ["rotate-keys"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "rotated 1" in result.output
    assert new_key not in result.output and key not in result.output
    raw = await raw_credentials(sessionmaker, cid)
    assert raw is not None
    assert open_tokens(KeyRing([new_key]), raw).refresh_token == (
        tokens.refresh_token.get_secret_value() if tokens.refresh_token else None
    )
