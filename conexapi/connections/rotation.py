"""Key rotation: every stored secret re-encrypted under the newest key.

The one write of a connection's credentials that keeps its ``version``: it compares the
ciphertext itself, so it never makes a token refresh lose its save (see ``service.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.db import create_engine, create_sessionmaker, unit_of_work
from conexapi.kit.crypto import DecryptionError, KeyRing
from conexapi.models import Connection, OAuthState
from conexapi.models.base import utcnow
from conexapi.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0
    #: Rows a concurrent writer changed between our read and our write (already new key).
    changed_meanwhile: int = 0
    states_rotated: int = 0
    states_purged: int = 0
    #: Connection ids no configured key can open (reported, left untouched).
    unreadable: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def rotate_keys(
    sessionmaker: async_sessionmaker[AsyncSession], keys: KeyRing, *, batch: int = 200
) -> RotationReport:
    """Re-encrypt every stored secret under the newest key.

    Safe to run while the service runs (each write compares the ciphertext it read) and
    to run again. Run it after every process has the new key list; the old key can go once
    it reports nothing left to rotate and nothing unreadable.
    """
    report = RotationReport()
    last_id = 0
    while True:
        async with unit_of_work(sessionmaker) as session:
            rows = (
                await session.execute(
                    select(Connection.id, Connection.credentials)
                    .where(Connection.id > last_id, Connection.credentials.is_not(None))
                    .order_by(Connection.id)
                    .limit(batch)
                )
            ).all()
            for conn_id, sealed in rows:
                last_id = conn_id
                if sealed is None or keys.is_current(sealed):
                    report.already_current += 1
                    continue
                try:
                    fresh = keys.rotate(sealed)
                except DecryptionError:
                    report.unreadable.append(conn_id)
                    continue
                result = cast(
                    CursorResult[Any],
                    await session.execute(
                        update(Connection)
                        .where(Connection.id == conn_id, Connection.credentials == sealed)
                        .values(credentials=fresh)
                        .execution_options(synchronize_session=False)
                    ),
                )
                if result.rowcount == 1:
                    report.rotated += 1
                else:
                    report.changed_meanwhile += 1
        if len(rows) < batch:
            break

    now = utcnow()
    async with unit_of_work(sessionmaker) as session:
        purged = cast(
            CursorResult[Any],
            await session.execute(delete(OAuthState).where(OAuthState.expires_at <= now)),
        )
        report.states_purged = purged.rowcount
        states = (await session.execute(select(OAuthState.id, OAuthState.code_verifier))).all()
        for state_id, sealed in states:
            if keys.is_current(sealed):
                continue
            try:
                fresh = keys.rotate(sealed)
            except DecryptionError:
                continue
            await session.execute(
                update(OAuthState)
                .where(OAuthState.id == state_id, OAuthState.code_verifier == sealed)
                .values(code_verifier=fresh)
                .execution_options(synchronize_session=False)
            )
            report.states_rotated += 1
    log.info(
        "keys_rotated",
        rotated=report.rotated,
        already_current=report.already_current,
        changed_meanwhile=report.changed_meanwhile,
        unreadable=len(report.unreadable),
        states_rotated=report.states_rotated,
    )
    return report


async def rotate_all_keys(settings: Settings) -> RotationReport:
    """``conexapi rotate-keys``: :func:`rotate_keys` on the configured database and keys."""
    engine = create_engine(settings, pool=False)
    try:
        return await rotate_keys(
            create_sessionmaker(engine), KeyRing.parse(settings.encryption_keys)
        )
    finally:
        await engine.dispose()
