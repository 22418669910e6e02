"""``conexapi create-user``: the first admin (and any user) without the API."""

from __future__ import annotations

from collections.abc import Sequence

from conexapi.auth import service
from conexapi.db import create_engine, create_sessionmaker, unit_of_work
from conexapi.models import AuditEntry, Role, utcnow
from conexapi.settings import Settings


async def create_user_command(
    settings: Settings, email: str, role: Role, merchant_ids: Sequence[int], password: str
) -> int:
    engine = create_engine(settings, pool=False)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            user = await service.create_user(session, email, password, role, merchant_ids)
            session.add(
                AuditEntry(
                    occurred_at=utcnow(),
                    actor_type="system",
                    actor_label="conexapi create-user",
                    action="user.create",
                    target_type="user",
                    target_id=str(user.id),
                    details={
                        "email": user.email,
                        "role": role.value,
                        "merchant_ids": list(merchant_ids),
                    },
                )
            )
            return user.id
    finally:
        await engine.dispose()
