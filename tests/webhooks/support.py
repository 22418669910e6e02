"""What the webhook tests share: a merchant with a linked Mercado Libre seller."""

from __future__ import annotations

from conexapi.db import create_engine, create_sessionmaker
from conexapi.models import Connection, Merchant
from conexapi.settings import Settings


async def link_seller(settings: Settings, account_id: str) -> None:
    """A merchant whose Mercado Libre account ``account_id`` is linked (active)."""
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session:
        merchant = Merchant(name="M", slug="m")
        session.add(merchant)
        await session.flush()
        session.add(
            Connection(
                merchant_id=merchant.id,
                connector="mercadolibre",
                external_account_id=account_id,
                display_name="s",
            )
        )
        await session.commit()
    await engine.dispose()
