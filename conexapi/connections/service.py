"""Connections: link, store secrets encrypted, hand out ERP credentials, unlink.

Every write of a connection's credentials bumps its ``version`` and checks the value it
read (optimistic locking), so a token pair saved by one process is never overwritten by a
process that read the row before. Key rotation (``rotation.py``) is the one exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from conexapi.connections.errors import (
    AccountLinkedElsewhere,
    ConnectionDisconnected,
    ConnectionNotFound,
    InvalidRateSettings,
    ReauthRequired,
)
from conexapi.kit.crypto import DecryptionError, KeyRing
from conexapi.models import Connection, ConnectionStatus, Pipeline, PipelineStatus
from conexapi.settings import get_settings
from connectors.base import ErpConnector
from connectors.models import AccountProfile, ErpCredentials, RateBudget, TokenSet

log = structlog.get_logger(__name__)

_KIND_OAUTH = "oauth2"
_KIND_API_KEY = "api_key"


class StaleConnection(Exception):
    """The connection changed since it was read (another writer bumped its version)."""


def keyring(keys: KeyRing | None = None) -> KeyRing:
    """``keys`` when given, else the ring from the process settings."""
    return keys if keys is not None else KeyRing.parse(get_settings().encryption_keys)


# --- sealed credentials -------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    scope: str | None = None


def seal_tokens(
    keys: KeyRing, access_token: str, refresh_token: str | None, scope: str | None
) -> str:
    return keys.encrypt_json(
        {
            "kind": _KIND_OAUTH,
            "access_token": access_token,
            "refresh_token": refresh_token,
            "scope": scope,
        }
    )


def open_tokens(keys: KeyRing, sealed: str) -> StoredTokens:
    data = keys.decrypt_json(sealed)
    if data.get("kind") != _KIND_OAUTH or not isinstance(data.get("access_token"), str):
        raise DecryptionError("stored credentials are not an OAuth token pair")
    refresh = data.get("refresh_token")
    scope = data.get("scope")
    return StoredTokens(
        access_token=data["access_token"],
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
    )


def seal_erp(keys: KeyRing, credentials: ErpCredentials) -> str:
    return keys.encrypt_json(
        {
            "kind": _KIND_API_KEY,
            "username": credentials.username,
            "access_key": credentials.access_key.get_secret_value(),
        }
    )


def open_erp(keys: KeyRing, sealed: str) -> ErpCredentials:
    data = keys.decrypt_json(sealed)
    if data.get("kind") != _KIND_API_KEY:
        raise DecryptionError("stored credentials are not API credentials")
    return ErpCredentials.model_validate(
        {"username": data["username"], "access_key": data["access_key"]}
    )


# --- reading --------------------------------------------------------------------------------


async def get_connection(session: AsyncSession, merchant_id: int, connection_id: int) -> Connection:
    conn = await session.get(Connection, connection_id)
    if conn is None or conn.merchant_id != merchant_id:
        # Another merchant's connection is as absent as a missing one.
        raise ConnectionNotFound()
    return conn


def ensure_usable(conn: Connection) -> None:
    if conn.status == ConnectionStatus.disconnected or conn.credentials is None:
        raise ConnectionDisconnected(conn.id)
    if conn.status == ConnectionStatus.needs_reauth:
        raise ReauthRequired(conn.id)


async def erp_credentials(
    session: AsyncSession, connection_id: int, *, keys: KeyRing | None = None
) -> ErpCredentials:
    """The decrypted API credentials of an ERP connection.

    Raises :class:`ReauthRequired` when the credentials were rejected and the merchant has
    to enter them again, :class:`ConnectionDisconnected` when the account was unlinked.
    """
    conn = await session.get(Connection, connection_id)
    if conn is None:
        raise ConnectionNotFound()
    ensure_usable(conn)
    assert conn.credentials is not None
    return open_erp(keyring(keys), conn.credentials)


# --- linking ------------------------------------------------------------------------------


async def _find_locked(session: AsyncSession, connector: str, account_id: str) -> Connection | None:
    return await session.scalar(
        select(Connection)
        .where(Connection.connector == connector, Connection.external_account_id == account_id)
        .with_for_update()
    )


async def _upsert(
    session: AsyncSession,
    *,
    merchant_id: int,
    connector: str,
    account_id: str,
    display_name: str,
    sealed: str,
    expires_at: datetime | None,
) -> Connection:
    """Create the connection, or update it when this merchant linked the account before."""
    existing = await _find_locked(session, connector, account_id)
    if existing is None:
        conn = Connection(
            merchant_id=merchant_id,
            connector=connector,
            external_account_id=account_id,
            display_name=display_name,
            status=ConnectionStatus.active,
            credentials=sealed,
            token_expires_at=expires_at,
            version=1,
        )
        try:
            async with session.begin_nested():
                session.add(conn)
                await session.flush()
        except IntegrityError:
            # The same account was linked at the same moment by another request.
            existing = await _find_locked(session, connector, account_id)
            if existing is None:
                raise
        else:
            log.info(
                "connection_linked",
                connection_id=conn.id,
                connector=connector,
                merchant_id=merchant_id,
                relinked=False,
            )
            return conn
    if existing.merchant_id != merchant_id:
        raise AccountLinkedElsewhere()
    existing.display_name = display_name or existing.display_name
    existing.credentials = sealed
    existing.token_expires_at = expires_at
    existing.status = ConnectionStatus.active
    existing.last_error = None
    existing.last_refresh_failed_at = None
    existing.version = existing.version + 1
    await session.flush()
    log.info(
        "connection_linked",
        connection_id=existing.id,
        connector=connector,
        merchant_id=merchant_id,
        relinked=True,
    )
    return existing


async def link_marketplace_account(
    session: AsyncSession,
    merchant_id: int,
    connector_name: str,
    token_set: TokenSet,
    profile: AccountProfile,
    *,
    keys: KeyRing | None = None,
) -> Connection:
    """Create or update the merchant's connection to a marketplace account.

    Linking an account the merchant already linked updates that connection (and brings it
    back from ``needs_reauth`` or ``disconnected``); an account linked to another merchant
    raises :class:`AccountLinkedElsewhere`.
    """
    if token_set.account_id and token_set.account_id != profile.account_id:
        raise ValueError("the token set and the profile belong to different accounts")
    sealed = seal_tokens(
        keyring(keys),
        token_set.access_token.get_secret_value(),
        token_set.refresh_token.get_secret_value() if token_set.refresh_token else None,
        token_set.scope,
    )
    return await _upsert(
        session,
        merchant_id=merchant_id,
        connector=connector_name,
        account_id=profile.account_id,
        display_name=profile.nickname or profile.account_id,
        sealed=sealed,
        expires_at=token_set.expires_at,
    )


def rate_budget(erp: ErpConnector, mode: str | None, requests_per_minute: int | None) -> RateBudget:
    """The request budget a connection with these settings gets from ``erp``; raises
    :class:`InvalidRateSettings` (saying what to send) for a mode the connector lacks."""
    if mode is not None and mode not in erp.modes:
        allowed = ", ".join(erp.modes)
        hint = f"one of: {allowed}" if allowed else "left out (this connector has no modes)"
        raise InvalidRateSettings(
            f"mode {mode!r} is not a {erp.name} mode; it must be {hint}.",
            details={"field": "mode", "allowed": list(erp.modes)},
        )
    return erp.rate_budget(mode, requests_per_minute)


async def link_erp_account(
    session: AsyncSession,
    merchant_id: int,
    connector_name: str,
    credentials: ErpCredentials,
    account_id: str,
    name: str,
    *,
    mode: str | None = None,
    requests_per_minute: int | None = None,
    keys: KeyRing | None = None,
) -> Connection:
    """Create or update the merchant's connection to an ERP company (credentials already
    checked by the caller, ``mode`` too). Linking again without a mode or a budget keeps
    the ones stored."""
    conn = await _upsert(
        session,
        merchant_id=merchant_id,
        connector=connector_name,
        account_id=account_id,
        display_name=name,
        sealed=seal_erp(keyring(keys), credentials),
        expires_at=None,
    )
    if mode is not None:
        conn.mode = mode
    if requests_per_minute is not None:
        conn.requests_per_minute = requests_per_minute
    await session.flush()
    return conn


# --- token writes ---------------------------------------------------------------------------


async def save_sealed_tokens(
    session: AsyncSession,
    connection_id: int,
    expected_version: int,
    sealed: str,
    expires_at: datetime | None,
) -> int | None:
    """Compare-and-set the token pair; the new version, or None when the row changed."""
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.version == expected_version)
            .values(
                credentials=sealed,
                token_expires_at=expires_at,
                version=expected_version + 1,
                last_error=None,
                last_refresh_failed_at=None,
            )
            .execution_options(synchronize_session=False)
        ),
    )
    return expected_version + 1 if result.rowcount == 1 else None


async def store_tokens(
    session: AsyncSession,
    connection: Connection,
    token_set: TokenSet,
    *,
    keys: KeyRing | None = None,
) -> None:
    """Save a new token pair on ``connection`` if nobody changed it since it was read.

    A refresh answer without a refresh token keeps the stored one. Raises
    :class:`StaleConnection` when the version moved (the caller re-reads).
    """
    ring = keyring(keys)
    old_refresh = None
    if connection.credentials is not None:
        old_refresh = open_tokens(ring, connection.credentials).refresh_token
    refresh = token_set.refresh_token.get_secret_value() if token_set.refresh_token else None
    sealed = seal_tokens(
        ring, token_set.access_token.get_secret_value(), refresh or old_refresh, token_set.scope
    )
    version = await save_sealed_tokens(
        session, connection.id, connection.version, sealed, token_set.expires_at
    )
    if version is None:
        raise StaleConnection(f"connection {connection.id} changed since it was read")
    for attr, value in (
        ("credentials", sealed),
        ("token_expires_at", token_set.expires_at),
        ("version", version),
        ("last_error", None),
        ("last_refresh_failed_at", None),
    ):
        set_committed_value(connection, attr, value)


async def mark_needs_reauth(
    session: AsyncSession,
    connection_id: int,
    reason: str,
    *,
    expected_version: int | None = None,
) -> bool:
    """Flag the connection for re-authorization; its runs wait until it is linked again.

    With ``expected_version`` nothing happens if the row changed since (a concurrent
    refresh or re-link made it usable). ``reason`` is shown by the API: keep secrets out.
    """
    where = [
        Connection.id == connection_id,
        Connection.status.in_((ConnectionStatus.active, ConnectionStatus.paused)),
    ]
    if expected_version is not None:
        where.append(Connection.version == expected_version)
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Connection)
            .where(*where)
            .values(
                status=ConnectionStatus.needs_reauth,
                last_error=reason[:1000],
                version=Connection.version + 1,
            )
            .execution_options(synchronize_session=False)
        ),
    )
    changed = result.rowcount == 1
    if changed:
        log.warning("connection_needs_reauth", connection_id=connection_id, reason=reason)
    return changed


async def record_refresh_failure(
    session: AsyncSession, connection_id: int, reason: str, at: datetime
) -> None:
    await session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(last_refresh_failed_at=at, last_error=reason[:1000])
        .execution_options(synchronize_session=False)
    )


# --- unlinking ------------------------------------------------------------------------------


async def disconnect(session: AsyncSession, merchant_id: int, connection_id: int) -> Connection:
    """Delete the connection's secrets and stop the pipelines using it; history stays."""
    conn = await get_connection(session, merchant_id, connection_id)
    conn.credentials = None
    conn.token_expires_at = None
    conn.status = ConnectionStatus.disconnected
    conn.last_error = None
    conn.last_refresh_failed_at = None
    conn.version = conn.version + 1
    stopped = cast(
        CursorResult[Any],
        await session.execute(
            update(Pipeline)
            .where(
                or_(
                    Pipeline.source_connection_id == connection_id,
                    Pipeline.target_connection_id == connection_id,
                ),
                Pipeline.status != PipelineStatus.stopped,
            )
            .values(status=PipelineStatus.stopped)
            .execution_options(synchronize_session=False)
        ),
    )
    await session.flush()
    log.info(
        "connection_disconnected",
        connection_id=connection_id,
        merchant_id=merchant_id,
        pipelines_stopped=stopped.rowcount,
    )
    return conn
