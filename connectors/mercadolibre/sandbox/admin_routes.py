"""The Mercado Libre part of the admin API (SANDBOX.md "Mercado Libre sandbox")."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from connectors.mercadolibre.sandbox.core import MLSandbox
from connectors.mercadolibre.sandbox.generator import Mix, OrderGenerator
from connectors.mercadolibre.sandbox.state import (
    App,
    NotifyTarget,
    Seller,
    admin_error,
    bump_updated,
    is_id,
    local_stamp,
    new_app_secret,
    utc_stamp,
)
from connectors.sandbox_kit import ADMIN_PREFIX


class SellerIn(BaseModel):
    user_id: int
    nickname: str
    site_id: str = "MCO"
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class AppIn(BaseModel):
    client_id: str
    client_secret: str | None = None
    redirect_uri: str
    pkce: bool = False
    billing_access: bool = True


class TokenIn(BaseModel):
    client_id: str
    user_id: int


class OrderIn(BaseModel):
    order: dict[str, Any]
    billing_info: dict[str, Any] | None = None


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seller_id: int
    count: int = Field(default=10, ge=1, le=20000)
    seed: int = 0
    mix: Mix = Field(default_factory=Mix)
    #: Window the orders' dates fall in; defaults to the last 24 hours.
    start: datetime | None = None
    end: datetime | None = None


class NotificationsIn(BaseModel):
    callback_url: str
    application_id: str | int | None = None
    topics: list[str] = Field(default_factory=list)


class NotifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: str = "orders_v2"
    resource: str
    user_id: int | None = None
    #: How many notifications to send for the resource.
    repeat: int = Field(default=1, ge=1, le=1000)
    #: True: the same event (same ``_id``/``received``) delivered ``repeat`` times, as a
    #: duplicate delivery; False: ``repeat`` distinct events, as ML sends on internal changes.
    same_event: bool = False
    user_id_as_string: bool = False
    #: Probability that a delivery attempt never reaches the callback.
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: Include ``_id``; None follows the documentation (absent on ``orders_v2``).
    with_id: bool | None = None
    #: False: answer at once and deliver in the background (see ``/notifications/flush``).
    wait: bool = True
    seed: int | None = None


def build_router(sb: MLSandbox) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])
    state = sb.state

    @router.post("/sellers", status_code=201)
    async def add_seller(body: SellerIn) -> dict[str, Any]:
        seller = Seller(**body.model_dump())
        state.sellers[seller.user_id] = seller
        return seller.public()

    @router.get("/sellers")
    async def list_sellers() -> list[dict[str, Any]]:
        return [s.public() for s in state.sellers.values()]

    @router.post("/sellers/{user_id}/revoke")
    async def revoke(user_id: int) -> dict[str, int]:
        """Every token of the seller stops working, as after a password change."""
        return {"revoked": state.revoke(user_id)}

    @router.post("/apps", status_code=201)
    async def add_app(body: AppIn) -> dict[str, Any]:
        app = App(
            client_id=body.client_id,
            client_secret=body.client_secret or new_app_secret(),
            redirect_uri=body.redirect_uri,
            pkce=body.pkce,
            billing_access=body.billing_access,
        )
        state.apps[app.client_id] = app
        return dict(app.__dict__)

    @router.post("/tokens", response_model=None)
    async def mint_tokens(body: TokenIn) -> dict[str, Any] | JSONResponse:
        """A token pair without the consent dance (demo and benchmarks)."""
        if body.client_id not in state.apps or body.user_id not in state.sellers:
            return admin_error(404, "unknown client_id or user_id")
        return state.issue_tokens(body.client_id, body.user_id, sb.cfg)

    # --- orders ------------------------------------------------------------------------

    def _prepare(order: dict[str, Any], billing_info: dict[str, Any] | None) -> str | None:
        seller = order.get("seller")
        if not isinstance(seller, dict) or seller.get("id") is None:
            return "order.seller.id is required"
        if order.get("id") is None:
            order["id"] = state.new_order_id()
        try:
            order["id"] = int(order["id"])
        except (TypeError, ValueError):
            return "order.id must be numeric"
        now = datetime.now(UTC)
        order.setdefault("date_created", local_stamp(now))
        order.setdefault("last_updated", local_stamp(now))
        order.setdefault("date_last_updated", utc_stamp(now))
        if billing_info is not None:
            buyer = order.setdefault("buyer", {})
            if not isinstance(buyer, dict):
                return "order.buyer must be an object"
            info = buyer.setdefault("billing_info", {})
            if info.get("id") is None:
                info["id"] = str(random.randrange(10**17, 10**18))
        return None

    @router.post("/orders", status_code=201, response_model=None)
    async def add_order(body: OrderIn) -> dict[str, Any] | JSONResponse:
        order = copy.deepcopy(body.order)
        problem = _prepare(order, body.billing_info)
        if problem:
            return admin_error(400, problem)
        state.store_order(order, copy.deepcopy(body.billing_info))
        sb.auto_notify(order)
        return {"id": order["id"]}

    @router.get("/orders")
    async def list_orders() -> dict[str, list[int]]:
        return {"ids": list(state.orders)}

    @router.get("/orders/{order_id}", response_model=None)
    async def get_order(order_id: int) -> dict[str, Any] | JSONResponse:
        stored = state.orders.get(order_id)
        if stored is None:
            return admin_error(404, f"order {order_id} not found")
        return {"order": stored.order, "billing_info": stored.billing_info}

    @router.patch("/orders/{order_id}", response_model=None)
    async def patch_order(order_id: int, changes: dict[str, Any]) -> dict[str, Any] | JSONResponse:
        stored = state.orders.get(order_id)
        if stored is None:
            return admin_error(404, f"order {order_id} not found")
        changes = copy.deepcopy(changes)
        billing = changes.pop("billing_info", None)
        changes.pop("id", None)
        order = {**stored.order, **changes}
        bump_updated(order)
        new_billing = billing if billing is not None else stored.billing_info
        problem = _prepare(order, new_billing)
        if problem:
            return admin_error(400, problem)
        state.store_order(order, new_billing)
        sb.auto_notify(order)
        return {"order": order, "billing_info": new_billing}

    @router.post("/orders/generate", status_code=201, response_model=None)
    async def generate(body: GenerateIn) -> dict[str, Any] | JSONResponse:
        end = body.end or datetime.now(UTC).replace(microsecond=0)
        start = body.start or end - timedelta(days=1)
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            return admin_error(400, "start and end must be aware timestamps, start < end")
        generator = OrderGenerator(
            seller_id=body.seller_id,
            seed=body.seed,
            mix=body.mix,
            start=start,
            end=end,
            taken_ids=set(state.orders),
        )
        ids = []
        for made in generator.generate(body.count):
            state.store_order(made.order, made.billing_info)
            sb.auto_notify(made.order)
            ids.append(made.order["id"])
        return {"ids": ids, "count": len(ids)}

    # --- notifications -----------------------------------------------------------------

    @router.put("/notifications", response_model=None)
    async def set_notifications(body: NotificationsIn) -> dict[str, Any] | JSONResponse:
        app_id = body.application_id
        if app_id is None:
            if len(state.apps) != 1:
                return admin_error(400, "application_id is required")
            app_id = next(iter(state.apps))
        state.notify = NotifyTarget(body.callback_url, str(app_id), list(body.topics))
        return dict(state.notify.__dict__)

    @router.get("/notifications")
    async def get_notifications() -> dict[str, Any]:
        target = state.notify
        return {
            "target": dict(target.__dict__) if target else None,
            "deliveries": list(state.deliveries),
        }

    @router.post("/notifications/flush")
    async def flush() -> dict[str, int]:
        return {"flushed": await sb.notifier.flush()}

    @router.post("/notify", response_model=None)
    async def notify(body: NotifyIn) -> dict[str, Any] | JSONResponse:
        target = state.notify
        if target is None:
            return admin_error(409, "no callback configured: PUT /_sandbox/notifications")
        if target.topics and body.topic not in target.topics:
            return {"notifications": [], "skipped": f"topic {body.topic!r} not subscribed"}
        user_id = body.user_id
        if user_id is None:
            stored = None
            if body.resource.startswith("/orders/") and is_id(body.resource[8:]):
                stored = state.orders.get(int(body.resource[8:]))
            if stored is None:
                return admin_error(400, "user_id is required")
            user_id = int(stored.order["seller"]["id"])
        rng = random.Random(body.seed) if body.seed is not None else sb.kit.rng
        cfg = sb.cfg

        def make() -> dict[str, Any]:
            return sb.notifier.event(
                target,
                topic=body.topic,
                resource=body.resource,
                user_id=user_id,
                with_id=body.with_id,
                user_id_as_string=body.user_id_as_string,
            )

        first = make()
        events = [
            copy.deepcopy(first) if body.same_event else (first if i == 0 else make())
            for i in range(body.repeat)
        ]
        jobs = [
            sb.notifier.deliver(target, e, cfg, drop_rate=body.drop_rate, rng=rng) for e in events
        ]
        if not body.wait:
            for job in jobs:
                sb.notifier.in_background(job)
            return {"notifications": [], "queued": len(jobs)}
        # One after another, as ML's deliveries of one resource are not simultaneous.
        return {"notifications": [await job for job in jobs]}

    @router.get("/missed_feeds")
    async def missed() -> dict[str, Any]:
        sb.notifier.prune(sb.cfg)
        return {"messages": list(state.missed_feeds)}

    return router
