"""What the webhook tests share: a merchant with a linked Mercado Libre seller, and the
notification that seller's orders arrive with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conexapi.db import create_engine, create_sessionmaker
from conexapi.models import Connection, Merchant
from conexapi.settings import Settings

APP_ID = "5503910054141466"
SELLER = 468424240


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


def note(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    body = {
        "resource": "/orders/2000003508419013",
        "user_id": SELLER,
        "topic": "orders_v2",
        "application_id": int(APP_ID),
        "attempts": 1,
        "sent": now,
        "received": now,
    }
    body.update(changes)
    return body
