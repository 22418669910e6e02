"""Merchants: create, find within the caller's scope, rename."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from conexapi.auth.principal import Principal
from conexapi.kit.api.scoping import merchant_clause
from conexapi.kit.errors import Conflict, NotFound
from conexapi.models import Merchant

MERCHANT_SORTS: dict[str, InstrumentedAttribute[Any]] = {
    "id": Merchant.id,
    "created_at": Merchant.created_at,
}


def merchants(principal: Principal, *, slug: str | None = None) -> Select[Merchant]:
    stmt = select(Merchant).where(merchant_clause(principal, Merchant.id))
    if slug is not None:
        stmt = stmt.where(Merchant.slug == slug)
    return stmt


async def create_merchant(session: AsyncSession, name: str, slug: str) -> Merchant:
    merchant = Merchant(name=name, slug=slug)
    try:
        async with session.begin_nested():
            session.add(merchant)
    except IntegrityError:
        raise Conflict(f"a merchant with slug {slug!r} exists.", code="slug_taken") from None
    return merchant


async def visible_merchant(
    session: AsyncSession, principal: Principal, merchant_id: int
) -> Merchant:
    """The merchant, or 404 when it does not exist or the caller may not see it."""
    merchant = await session.get(Merchant, merchant_id) if principal.sees(merchant_id) else None
    if merchant is None:
        raise NotFound(f"merchant {merchant_id} not found.")
    return merchant
