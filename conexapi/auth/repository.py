"""Queries behind the users and API-keys endpoints (admins only, so no merchant scope)."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.errors import NotFound
from conexapi.models import ApiKey, Role, User, UserMerchant


def users(
    *, role: Role | None = None, email: str | None = None, merchant_id: int | None = None
) -> Select[User]:
    """``email`` as stored (normalized by the caller)."""
    stmt = select(User)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if email is not None:
        stmt = stmt.where(User.email == email)
    if merchant_id is not None:
        stmt = stmt.where(
            User.id.in_(select(UserMerchant.user_id).where(UserMerchant.merchant_id == merchant_id))
        )
    return stmt


def api_keys(*, revoked: bool | None = None) -> Select[ApiKey]:
    stmt = select(ApiKey)
    if revoked is not None:
        stmt = stmt.where(
            ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
        )
    return stmt


async def api_key(session: AsyncSession, key_id: int) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} not found.")
    return row
