"""One merchant's pipeline in this process: SQLite, both sandboxes over ASGI, no broker.

The product's own code reaches the sandboxes through the process's HTTP client (mounted on
the sandbox apps), links the accounts with the connections service, and runs syncs with
the production runner called inline, so reconcile and the reports are exercised end to
end without ports, workers or Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from sqlalchemy import func, select

from conexapi.connections.service import link_erp_account, link_marketplace_account
from conexapi.db import unit_of_work
from conexapi.kit.resources import Resources, open_resources
from conexapi.migrate import upgrade
from conexapi.models import Mapping, Merchant, OrderSync, Pipeline, SyncRun
from conexapi.settings import Environment, Settings
from conexapi.sync.context import SyncContext
from conexapi.sync.runner import execute_run
from connectors.models import AccountProfile, ErpCredentials, TokenSet
from connectors.registry import all_connectors
from tests.support.ids import ACCESS_KEY, APP_ID, PAID_ONLY, SELLER_ID, SIIGO_USER, SKUS
from tests.support.stack import merge_settings

ML = "http://ml.sandbox"
SIIGO = "http://siigo.sandbox"


@dataclass
class World:
    res: Resources
    ctx: SyncContext
    ml: httpx.AsyncClient
    siigo: httpx.AsyncClient
    merchant_id: int
    pipeline_id: int
    company: dict[str, Any]

    async def generate(self, count: int, seed: int, **mix: Any) -> list[str]:
        resp = await self.ml.post(
            "/_sandbox/orders/generate",
            json={
                "seller_id": SELLER_ID,
                "count": count,
                "seed": seed,
                "mix": {"skus": SKUS, **PAID_ONLY, **mix},
            },
        )
        resp.raise_for_status()
        return [str(i) for i in resp.json()["ids"]]

    async def queued_runs(self) -> list[int]:
        async with self.res.sessionmaker() as s:
            return list(await s.scalars(select(SyncRun.id).where(SyncRun.status == "queued")))

    async def run_queued(self) -> int:
        """Run every queued run here, as a worker would, until none is left."""
        done = 0
        while ids := await self.queued_runs():
            for run_id in ids:
                await execute_run(self.ctx, run_id)
                done += 1
        return done

    async def orders(self) -> dict[str, OrderSync]:
        async with self.res.sessionmaker() as s:
            rows = await s.scalars(
                select(OrderSync).where(OrderSync.pipeline_id == self.pipeline_id)
            )
            return {r.external_order_id: r for r in rows}

    async def run_count(self) -> int:
        async with self.res.sessionmaker() as s:
            return int(await s.scalar(select(func.count()).select_from(SyncRun)) or 0)

    async def invoices(self) -> list[dict[str, Any]]:
        resp = await self.siigo.get(
            "/_sandbox/invoices", params={"company": self.company["company"]}
        )
        resp.raise_for_status()
        out: list[dict[str, Any]] = resp.json()
        return out

    async def siigo_received(self, path: str | None = None) -> list[dict[str, Any]]:
        """Requests Siigo's real routes RECEIVED (its admin routes aside), oldest first."""
        resp = await self.siigo.get("/_sandbox/requests", params={"path": path} if path else {})
        resp.raise_for_status()
        out: list[dict[str, Any]] = resp.json()
        return out

    async def invoice_posts(self) -> Counter[str]:
        """Invoice creations Siigo received, by idempotency key: what it kept is deduplicated
        by its own idempotency, what it received is what the product sent."""
        return Counter(
            e["headers"].get("idempotency-key")
            for e in await self.siigo_received("/v1/invoices")
            if e["method"] == "POST"
        )

    async def ml_order(self, order_id: str) -> dict[str, Any]:
        resp = await self.ml.get(f"/_sandbox/orders/{order_id}")
        resp.raise_for_status()
        order: dict[str, Any] = resp.json()["order"]
        return order


def world_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": Environment.test,
        "database_url": database_url,
        "redis_url": None,
        "connectors": {
            "mercadolibre": {
                "api_url": ML,
                "auth_url": ML,
                "client_id": APP_ID,
                "client_secret": "demo-client-secret",
                "requests_per_minute": 100_000,
            },
            # Siigo's pace (100 requests a minute) is the subject of other tests; here the
            # sandbox does not limit and neither does the product (nor for Mercado Libre).
            "siigo": {"api_url": SIIGO, "requests_per_minute": 100_000},
        },
        "reconcile_lag_seconds": 0.0,
        "log_level": "WARNING",
    }
    merge_settings(values, overrides)
    return Settings(_env_file=None, **values)


async def _link(w_res: Resources, ml: httpx.AsyncClient, siigo: httpx.AsyncClient) -> World:
    await ml.post(
        "/_sandbox/apps",
        json={
            "client_id": APP_ID,
            "client_secret": "demo-client-secret",
            "redirect_uri": "http://127.0.0.1/oauth/mercadolibre/callback",
            "pkce": True,
        },
    )
    await ml.post(
        "/_sandbox/sellers", json={"user_id": SELLER_ID, "nickname": "TIENDA", "site_id": "MCO"}
    )
    tokens = await ml.post("/_sandbox/tokens", json={"client_id": APP_ID, "user_id": SELLER_ID})
    tokens.raise_for_status()
    pair = tokens.json()
    disable = {"rate_limit": {"enabled": False}}
    (await siigo.patch("/_sandbox/config", json=disable)).raise_for_status()
    company = (
        await siigo.post(
            "/_sandbox/companies",
            json={"username": SIIGO_USER, "access_key": ACCESS_KEY, "mode": "production"},
        )
    ).json()
    for sku in [*SKUS, "ENVIO"]:
        await siigo.post(
            "/_sandbox/products",
            json={
                "company": company["company"],
                "code": sku,
                "name": sku.title(),
                "taxes": [company["tax_ids"]["IVA 19%"]],
                "active": True,
            },
        )
    # A pipeline created a while ago: the reconcile cursor starts at its creation.
    created = datetime.now(UTC) - timedelta(days=2)
    async with unit_of_work(w_res.sessionmaker) as s:
        merchant = Merchant(name="Tienda", slug="tienda", created_at=created, updated_at=created)
        s.add(merchant)
        await s.flush()
        source = await link_marketplace_account(
            s,
            merchant.id,
            "mercadolibre",
            TokenSet(
                access_token=SecretStr(pair["access_token"]),
                refresh_token=SecretStr(pair["refresh_token"]),
                expires_at=datetime.now(UTC) + timedelta(seconds=pair["expires_in"]),
                account_id=str(SELLER_ID),
            ),
            AccountProfile(account_id=str(SELLER_ID), nickname="TIENDA", site="MCO"),
        )
        target = await link_erp_account(
            s,
            merchant.id,
            "siigo",
            ErpCredentials(username=SIIGO_USER, access_key=SecretStr(ACCESS_KEY)),
            SIIGO_USER,
            "Tienda SAS",
        )
        pipeline = Pipeline(
            merchant_id=merchant.id,
            name="ML → Siigo",
            source_connection_id=source.id,
            target_connection_id=target.id,
            settings={
                "document_type_id": str(company["document_type_id"]),
                "seller_id": str(company["seller_id"]),
                "payment_type_id": str(company["payment_type_id"]),
                "tax_id": str(company["tax_ids"]["IVA 19%"]),
                "tax_percentage": "19",
                "shipping_product_code": "ENVIO",
            },
            created_at=created,
            updated_at=created,
        )
        s.add(pipeline)
        await s.flush()
        for sku in SKUS:
            s.add(Mapping(pipeline_id=pipeline.id, kind="sku", source_value=sku, target_value=sku))
        merchant_id, pipeline_id = merchant.id, pipeline.id
    return World(w_res, SyncContext.of(w_res), ml, siigo, merchant_id, pipeline_id, company)


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, database_url: str | None = None, **overrides: Any
) -> AsyncIterator[World]:
    """The world on a SQLite file, or on ``database_url`` (an empty MariaDB database)."""
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'world.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    settings = world_settings(url, **overrides)
    specs = all_connectors()
    async with (
        LifespanManager(specs["mercadolibre"].sandbox_app()) as ml_app,
        LifespanManager(specs["siigo"].sandbox_app()) as siigo_app,
    ):
        mounts: dict[str, httpx.AsyncBaseTransport] = {
            ML: httpx.ASGITransport(app=ml_app.app),
            SIIGO: httpx.ASGITransport(app=siigo_app.app),
        }
        res = await open_resources(settings, mounts=mounts)
        try:
            async with (
                httpx.AsyncClient(transport=mounts[ML], base_url=ML) as ml,
                httpx.AsyncClient(transport=mounts[SIIGO], base_url=SIIGO) as siigo,
            ):
                yield await _link(res, ml, siigo)
        finally:
            await res.aclose()
