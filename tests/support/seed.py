"""Factories for a merchant's whole setup, made through the product's own endpoints, as a
merchant would make it: both connections linked (OAuth consent; ERP credentials), a pipeline
with its mappings, and orders generated in the marketplace sandbox.

Plain async functions over three clients: the API (with an admin key), the marketplace
sandbox and the ERP sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.ids import (
    ACCESS_KEY,
    APP_ID,
    APP_SECRET,
    SELLER_ID,
    SHIPPING_SKU,
    SIIGO_USER,
    SKUS,
    UNMAPPED_SKU,
)


@dataclass
class PipelineSetup:
    merchant_id: int
    pipeline_id: int
    company: dict[str, Any]
    order_ids: list[str]


async def link_accounts(
    api: httpx.AsyncClient,
    ml: httpx.AsyncClient,
    siigo: httpx.AsyncClient,
    merchant_id: int,
    siigo_mode: str = "production",
) -> tuple[int, int, dict[str, Any]]:
    """Both connections through the product's own endpoints; (marketplace connection id,
    ERP connection id, the sandbox company)."""
    headers = {"X-Merchant-Id": str(merchant_id)}
    resp = await api.post("/api/v1/connections/mercadolibre/authorize", headers=headers, json={})
    resp.raise_for_status()
    # The seller's browser (this client keeps the cookie) opens the consent link and
    # continues from its page, which binds the consent to it.
    link = resp.json()["authorization_url"]
    (await api.get(link)).raise_for_status()
    state = parse_qs(urlsplit(link).query)["state"][0]
    continued = await api.post(urlsplit(link).path, data={"state": state})
    if continued.status_code != 303:
        raise RuntimeError(f"consent link refused: {continued.text}")
    auth_url = continued.headers["location"]
    # The sandbox's consent page, answered for the seller without a browser.
    consent = await ml.get(auth_url + f"&auto_consent={SELLER_ID}", follow_redirects=False)
    callback = consent.headers["location"]
    parts = urlsplit(callback)
    done = await api.get(
        parts.path,
        params={k: v[0] for k, v in parse_qs(parts.query).items()},
        follow_redirects=False,
    )
    if done.status_code >= 400:
        raise RuntimeError(f"consent failed: {done.text}")
    conns = (await api.get("/api/v1/connections", headers=headers)).json()["items"]
    ml_conn = next(c for c in conns if c["connector"] == "mercadolibre")

    credentials = {"username": SIIGO_USER, "access_key": ACCESS_KEY, "mode": siigo_mode}
    company = (await siigo.post("/_sandbox/companies", json=credentials)).json()
    for sku in [*SKUS, UNMAPPED_SKU, SHIPPING_SKU]:
        await siigo.post(
            "/_sandbox/products",
            json={
                "company": company["company"],
                "code": sku,
                "name": sku.replace("-", " ").title(),
                "taxes": [company["tax_ids"]["IVA 19%"]],
                "active": True,
            },
        )
    # The sandbox company's mode, named as a merchant names it (the ERP's API can't say).
    resp = await api.post("/api/v1/connections/siigo", headers=headers, json=credentials)
    resp.raise_for_status()
    return ml_conn["id"], resp.json()["id"], company


async def seed(
    api: httpx.AsyncClient,
    ml: httpx.AsyncClient,
    siigo: httpx.AsyncClient,
    *,
    orders: int,
    seed_value: int,
    api_url: str,
    mix: dict[str, Any] | None = None,
    siigo_mode: str = "production",
) -> PipelineSetup:
    """A merchant, its linked accounts, a pipeline mapping ``SKUS``, notifications pointed at
    ``api_url``, and ``orders`` generated orders plus one with ``UNMAPPED_SKU`` (none sent)."""
    merchant = (
        await api.post("/api/v1/merchants", json={"name": "Tienda Demo SAS", "slug": "tienda-demo"})
    ).json()
    await ml.post(
        "/_sandbox/apps",
        json={
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "redirect_uri": f"{api_url}/oauth/mercadolibre/callback",
            "pkce": True,
        },
    )
    await ml.post(
        "/_sandbox/sellers",
        json={"user_id": SELLER_ID, "nickname": "TIENDADEMO", "site_id": "MCO"},
    )
    ml_conn, siigo_conn, company = await link_accounts(api, ml, siigo, merchant["id"], siigo_mode)
    pipeline = (
        await api.post(
            "/api/v1/pipelines",
            json={
                "merchant_id": merchant["id"],
                "name": "Mercado Libre → Siigo",
                "source_connection_id": ml_conn,
                "target_connection_id": siigo_conn,
                "settings": {
                    "document_type_id": str(company["document_type_id"]),
                    "seller_id": str(company["seller_id"]),
                    "payment_type_id": str(company["payment_type_id"]),
                    "tax_id": str(company["tax_ids"]["IVA 19%"]),
                    "tax_percentage": "19",
                    "shipping_product_code": SHIPPING_SKU,
                    "send_stamp": True,
                },
            },
        )
    ).json()
    await api.put(
        f"/api/v1/pipelines/{pipeline['id']}/mappings",
        json=[{"kind": "sku", "source_value": s, "target_value": s} for s in SKUS],
    )
    await ml.put(
        "/_sandbox/notifications",
        json={
            "callback_url": f"{api_url}/webhooks/mercadolibre",
            "application_id": APP_ID,
            "topics": ["orders_v2"],
        },
    )
    generated = (
        await ml.post(
            "/_sandbox/orders/generate",
            json={
                "seller_id": SELLER_ID,
                "count": orders,
                "seed": seed_value,
                "mix": {
                    "skus": SKUS,
                    "cancelled_rate": 0.1,
                    "shipping_rate": 0.3,
                    "nit_rate": 0.25,
                    **(mix or {}),
                },
            },
        )
    ).json()
    ids = [str(i) for i in generated["ids"]]
    # One order carries a SKU nobody mapped.
    odd = (
        await ml.post(
            "/_sandbox/orders/generate",
            json={
                "seller_id": SELLER_ID,
                "count": 1,
                "seed": seed_value + 1,
                "mix": {"skus": [UNMAPPED_SKU], "cancelled_rate": 0.0},
            },
        )
    ).json()
    ids += [str(i) for i in odd["ids"]]
    return PipelineSetup(merchant["id"], pipeline["id"], company, ids)


async def orders_by_state(api: httpx.AsyncClient, pipeline_id: int) -> list[dict[str, Any]]:
    """Every order of the pipeline, following the list's cursor."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"pipeline_id": pipeline_id, "sort": "id", "limit": 500}
    while True:
        response = await api.get("/api/v1/orders", params=params)
        response.raise_for_status()
        page = response.json()
        out += page["items"]
        if not page["next_cursor"]:
            return out
        params["cursor"] = page["next_cursor"]


async def admin_api_key(settings: Any) -> str:
    """An admin API key made in the database the settings name."""
    from conexapi.auth.service import bootstrap_api_key
    from conexapi.db import create_engine, create_sessionmaker

    engine = create_engine(settings, pool=False)
    try:
        return await bootstrap_api_key(create_sessionmaker(engine), "tests")
    finally:
        await engine.dispose()
