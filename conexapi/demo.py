"""``conexapi demo`` (``make run``): the main job, end to end, on the embedded default.

One process, no MariaDB, no Redis: the Mercado Libre and Siigo sandboxes, the API, and a
Celery worker with beat (in-memory broker) all run here on a SQLite file. The demo links a
seller through the real OAuth consent and a Siigo company through its API credentials,
creates a pipeline with mappings, has the marketplace sandbox generate realistic Colombian
orders and notify them (some twice, one with a SKU nobody mapped), and shows them becoming
invoices. Then it adds the missing mapping, shows that order resume by itself, prints
order → invoice → total → status, and keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from rich.table import Table

from conexapi.demo_progress import SETTLED, NotSettled, console, demo_api_key, wait_settled

DEMO_DB = Path("conexapi-demo.db")
HOST = "127.0.0.1"
#: The simulators the demo serves.
SANDBOXES = ("mercadolibre", "siigo")
APP_ID = "5503910054141466"
SELLER_ID = 468424240
SIIGO_USER = "ventas@demo-merchant.co"
SKUS = ["CAM-ALG-M", "CAM-ALG-L", "TEN-RUN-42", "MORRAL-20L", "GORRA-NEG", "BOTELLA-1L"]
UNMAPPED_SKU = "MEDIAS-X3"


@dataclass
class DemoSetup:
    merchant_id: int
    pipeline_id: int
    company: dict[str, Any]
    order_ids: list[str]


def _environment(api_port: int, ml_port: int, siigo_port: int) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
    os.environ.pop("CONEXAPI_REDIS_URL", None)
    os.environ.update(
        {
            "CONEXAPI_DATABASE_URL": f"sqlite+aiosqlite:///./{DEMO_DB}",
            "CONEXAPI_API_PORT": str(api_port),
            "CONEXAPI_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
            "CONEXAPI_MERCADOLIBRE_API_URL": f"http://127.0.0.1:{ml_port}",
            "CONEXAPI_MERCADOLIBRE_AUTH_URL": f"http://127.0.0.1:{ml_port}",
            "CONEXAPI_MERCADOLIBRE_CLIENT_ID": APP_ID,
            "CONEXAPI_MERCADOLIBRE_CLIENT_SECRET": "demo-client-secret",
            "CONEXAPI_MERCADOLIBRE_REDIRECT_URI": (
                f"http://127.0.0.1:{api_port}/oauth/mercadolibre/callback"
            ),
            "CONEXAPI_SIIGO_API_URL": f"http://127.0.0.1:{siigo_port}",
            "CONEXAPI_SWEEPER_INTERVAL_SECONDS": "2",
            "CONEXAPI_LOG_LEVEL": os.environ.get("CONEXAPI_LOG_LEVEL", "WARNING"),
        }
    )


async def link_accounts(
    api: httpx.AsyncClient,
    ml: httpx.AsyncClient,
    siigo: httpx.AsyncClient,
    merchant_id: int,
    siigo_mode: str = "production",
) -> tuple[int, int, dict[str, Any]]:
    """Both connections through the product's own endpoints (OAuth consent; credentials)."""
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

    company = (
        await siigo.post(
            "/_sandbox/companies",
            json={
                "username": SIIGO_USER,
                "access_key": "ZGVtby1hY2Nlc3Mta2V5",
                "mode": siigo_mode,
            },
        )
    ).json()
    for sku in [*SKUS, UNMAPPED_SKU, "ENVIO"]:
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
    resp = await api.post(
        "/api/v1/connections/siigo",
        headers=headers,
        # The sandbox company's mode, named as a merchant names it (Siigo's API can't say).
        json={"username": SIIGO_USER, "access_key": "ZGVtby1hY2Nlc3Mta2V5", "mode": siigo_mode},
    )
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
) -> DemoSetup:
    merchant = (
        await api.post("/api/v1/merchants", json={"name": "Tienda Demo SAS", "slug": "tienda-demo"})
    ).json()
    await ml.post(
        "/_sandbox/apps",
        json={
            "client_id": APP_ID,
            "client_secret": "demo-client-secret",
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
                    "shipping_product_code": "ENVIO",
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
    return DemoSetup(merchant["id"], pipeline["id"], company, ids)


async def notify_all(ml: httpx.AsyncClient, order_ids: list[str]) -> None:
    """Each order notified as Mercado Libre does; every third one twice (a duplicate)."""
    for n, oid in enumerate(order_ids):
        await ml.post(
            "/_sandbox/notify",
            json={
                "topic": "orders_v2",
                "resource": f"/orders/{oid}",
                "user_id": SELLER_ID,
                "repeat": 2 if n % 3 == 0 else 1,
            },
        )


def show_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Mercado Libre orders → Siigo invoices")
    for col in ("order", "state", "invoice", "order total", "invoice total", "note"):
        table.add_column(col, justify="right" if "total" in col else "left")
    for r in sorted(rows, key=lambda r: r["id"]):
        style = {"invoiced": "green", "needs_mapping": "yellow", "closed": "dim"}.get(
            r["state"], "red" if r["state"] in ("failed", "needs_attention") else ""
        )
        table.add_row(
            r["external_order_id"],
            f"[{style}]{r['state']}[/{style}]" if style else r["state"],
            r["erp_document_name"] or "—",
            f"{Decimal(r['order_total']):,.2f}" if r["order_total"] else "—",
            f"{Decimal(r['erp_total']):,.2f}" if r["erp_total"] else "—",
            (r["last_error_message"] or "")[:48],
        )
    console.print(table)


async def show_verdict(
    ml: httpx.AsyncClient, siigo: httpx.AsyncClient, setup: DemoSetup, rows: list[dict[str, Any]]
) -> bool:
    """Print what the sandboxes saw, and whether every paid order became exactly one invoice:
    one invoice kept per paid order, and one invoice request received for each (a demo has
    no fault that would justify a second)."""
    statuses = [
        (await ml.get(f"/_sandbox/orders/{oid}")).json()["order"]["status"]
        for oid in setup.order_ids
    ]
    paid = statuses.count("paid")
    invoiced = sum(r["state"] == "invoiced" for r in rows)
    invoices = (
        await siigo.get("/_sandbox/invoices", params={"company": setup.company["company"]})
    ).json()
    posts = (
        await siigo.get("/_sandbox/requests", params={"path": "/v1/invoices", "method": "POST"})
    ).json()
    once = paid > 0 and invoiced == len(invoices) == len(posts) == paid
    console.print(
        f"{len(setup.order_ids)} orders, {paid} paid: {invoiced} invoiced; Siigo received "
        f"{len(posts)} invoice requests and kept {len(invoices)} invoices "
        f"(one per paid order: {'yes' if once else 'NO'}).",
        soft_wrap=True,
    )
    return once


async def _main(
    orders: int, seed_value: int, exit_after: bool, sockets: dict[str, socket.socket]
) -> int:
    from conexapi.app import create_app
    from conexapi.migrate import upgrade
    from conexapi.serving import bound_port, serving
    from conexapi.settings import get_settings
    from connectors.registry import all_connectors
    from workers import tasks  # noqa: F401  (registers the tasks)
    from workers.celery_app import app as celery_app
    from workers.embedded import start_embedded_worker

    settings = get_settings()
    await asyncio.to_thread(upgrade, settings.database_url)
    specs = all_connectors()
    worker = await asyncio.to_thread(
        start_embedded_worker, celery_app, settings=settings, beat=True
    )
    api_url = f"http://127.0.0.1:{bound_port(sockets['api'])}"
    api_key = await demo_api_key(settings)
    apps = [
        *((name, specs[name].sandbox_app(), HOST, sockets[name]) for name in SANDBOXES),
        ("api", create_app(settings), HOST, sockets["api"]),
    ]
    try:
        async with (
            serving(apps, settings) as served,
            httpx.AsyncClient(
                base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"}
            ) as api,
            httpx.AsyncClient(base_url=served[0].url, timeout=30) as ml,
            httpx.AsyncClient(base_url=served[1].url, timeout=30) as siigo,
        ):
            console.rule("[bold]ConexAPI demo[/bold] — embedded: SQLite, in-process queue")
            for s in served:
                console.print(f"  {s.name:<13} {s.url}")
            setup = await seed(
                api, ml, siigo, orders=orders, seed_value=seed_value, api_url=api_url
            )
            console.print(
                f"Linked seller {SELLER_ID} (OAuth consent) and Siigo company "
                f"{SIIGO_USER}; pipeline {setup.pipeline_id} with {len(SKUS)} SKU mappings."
            )
            console.print(
                f"Mercado Libre sends {len(setup.order_ids)} order notifications "
                "(every third one twice; one order has an unmapped SKU)…"
            )
            await notify_all(ml, setup.order_ids)
            try:
                rows = await wait_settled(api, setup.pipeline_id, len(setup.order_ids), 180)
                parked = [r for r in rows if r["state"] == "needs_mapping"]
                if parked:
                    console.print(
                        f"{len(parked)} order(s) wait for a mapping of {UNMAPPED_SKU}; "
                        "adding it — they resume with no manual retry…"
                    )
                    await api.put(
                        f"/api/v1/pipelines/{setup.pipeline_id}/mappings",
                        json=[
                            {
                                "kind": "sku",
                                "source_value": UNMAPPED_SKU,
                                "target_value": UNMAPPED_SKU,
                            }
                        ],
                    )
                    rows = await wait_settled(
                        api,
                        setup.pipeline_id,
                        len(setup.order_ids),
                        120,
                        SETTLED - {"needs_mapping"},
                    )
            except NotSettled as exc:
                console.print(f"[bold red]The orders did not settle: {exc}[/bold red]")
                if exit_after:
                    show_table(exc.rows)
                    return 1
                rows = exc.rows
            show_table(rows)
            once = await show_verdict(ml, siigo, setup, rows)
            if exit_after:
                return 0 if once else 1
            console.rule("serving — Ctrl-C to stop")
            console.print(f"  API docs      {api_url}/docs")
            # A read-only key for the person at the terminal, in this throwaway demo database
            # only: /api/v1 answers 401 without one.
            viewer_key = await demo_api_key(settings, viewer_of=setup.merchant_id)
            console.print(f"  orders        {api_url}/api/v1/orders")
            console.print(f"  runs          {api_url}/api/v1/runs")
            console.print(
                "  try           curl -H 'Authorization: Bearer "
                f"{viewer_key}' {api_url}/api/v1/runs?limit=5"
            )
            console.print(
                "  your own user "
                f"CONEXAPI_DATABASE_URL=sqlite+aiosqlite:///./{DEMO_DB} "
                "conexapi create-user --email you@example.co --role admin"
            )
            console.print(f"  readiness     {api_url}/readyz")
            console.print(f"  Siigo sandbox {served[1].url}/_sandbox/invoices")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            return 0
    finally:
        await asyncio.to_thread(worker.stop)


def bind_ports(requested: dict[str, int]) -> dict[str, socket.socket]:
    """A bound socket for the API and each sandbox, before anything starts.

    A port asked for (``requested``) must be free: :class:`PortUnavailable` says which is
    not. Otherwise the configured one is used (``CONEXAPI_API_PORT``,
    ``CONEXAPI_SANDBOX_<NAME>_PORT``) or, when something else holds it, any free port; the
    demo prints which.
    """
    from conexapi.sandboxes import sandbox_ports
    from conexapi.serving import PortUnavailable, bound_port, listen
    from conexapi.settings import get_settings

    settings = get_settings()
    configured = {"api": settings.api_port, **sandbox_ports(settings)}
    sockets: dict[str, socket.socket] = {}
    try:
        for name in ("api", *SANDBOXES):
            if name in requested:
                sockets[name] = listen(HOST, requested[name])
                continue
            try:
                sockets[name] = listen(HOST, configured[name])
            except PortUnavailable as exc:
                sockets[name] = listen(HOST, 0)
                console.print(
                    f"[yellow]{exc}[/yellow]; {name} uses port {bound_port(sockets[name])} instead"
                )
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def run_demo(*, orders: int, seed: int, exit_after: bool, ports: dict[str, int]) -> int:
    """The demo on the ports asked for in ``ports`` (``api``, a sandbox's name), free ones
    otherwise. Raises :class:`~conexapi.serving.PortUnavailable` for a port asked for."""
    from conexapi.serving import bound_port
    from conexapi.settings import get_settings

    sockets = bind_ports(ports)
    try:
        _environment(
            bound_port(sockets["api"]),
            bound_port(sockets["mercadolibre"]),
            bound_port(sockets["siigo"]),
        )
        get_settings.cache_clear()
        from conexapi.kit.logging import configure_logging

        settings = get_settings()
        configure_logging(settings.log_level, json=False)
        return asyncio.run(_main(orders, seed, exit_after, sockets))
    finally:
        for sock in sockets.values():
            sock.close()
