"""Orders, billing info and missed feeds, as Mercado Libre serves them (EXTERNAL_APIS §1.3)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connectors.mercadolibre.sandbox.core import MLSandbox
from connectors.mercadolibre.sandbox.oauth_routes import unauthorized
from connectors.mercadolibre.sandbox.state import (
    Grant,
    is_id,
    ml_error,
    parse_stamp,
)

MAX_LIMIT = 50
DATE_FILTERS = ("date_created", "date_closed", "date_last_updated")
SORTS = {"date_asc": "Date ascending", "date_desc": "Date descending"}


def _party(order: dict[str, Any], role: str) -> str:
    party = order.get(role)
    return str(party.get("id")) if isinstance(party, dict) else ""


def _hour(value: str) -> datetime | None:
    """A date filter bound: Mercado Libre keeps only the hour and drops the rest."""
    parsed = parse_stamp(value.replace(" ", "+"))
    return None if parsed is None else parsed.replace(minute=0, second=0, microsecond=0)


def _int(value: str | None, default: int) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return None


def build_router(sb: MLSandbox) -> APIRouter:
    router = APIRouter(tags=["orders"])
    state = sb.state

    def _caller(request: Request) -> Grant | None:
        return state.token_owner(request.headers.get("authorization"))

    @router.get("/orders/search")
    async def search(request: Request) -> JSONResponse:
        grant = _caller(request)
        if grant is None:
            return unauthorized()
        q = request.query_params
        seller, buyer = q.get("seller"), q.get("buyer")
        if not seller and not buyer:
            return ml_error(400, "bad_request", "A seller or buyer filter is required")
        role, who = ("seller", seller) if seller else ("buyer", buyer)
        if not is_id(who or ""):
            return ml_error(400, "bad_request", f"Invalid {role} id")
        if who != str(grant.user_id):
            return ml_error(403, "caller.id.invalid", f"The caller is not the {role}")
        offset, limit = _int(q.get("offset"), 0), _int(q.get("limit"), MAX_LIMIT)
        if offset is None or offset < 0:
            return ml_error(400, "bad_request", "Invalid offset")
        if limit is None or limit < 1 or limit > MAX_LIMIT:
            return ml_error(400, "bad_request", f"Limit must be between 1 and {MAX_LIMIT}")
        sort = q.get("sort") or "date_asc"
        if sort not in SORTS:
            return ml_error(400, "bad_request", f"Invalid sort {sort!r}")
        bounds: list[tuple[str, datetime | None, datetime | None]] = []
        for name in DATE_FILTERS:
            raw_from, raw_to = q.get(f"order.{name}.from"), q.get(f"order.{name}.to")
            low = _hour(raw_from) if raw_from else None
            high = _hour(raw_to) if raw_to else None
            if (raw_from and low is None) or (raw_to and high is None):
                return ml_error(400, "bad_request", f"Invalid date in order.{name}")
            if low or high:
                bounds.append((name, low, high))
        statuses = {s for s in (q.get("order.status") or "").split(",") if s}
        text = (q.get("q") or "").strip().lower()

        def keep(order: dict[str, Any]) -> bool:
            if _party(order, role) != who:
                return False
            if statuses:
                if order.get("status") not in statuses:
                    return False
            elif role == "seller" and order.get("status") == "cancelled":
                # A seller's search leaves cancelled orders out unless asked by status.
                return False
            for name, low, high in bounds:
                moment = parse_stamp(order.get(name))
                if moment is None:
                    return False
                if (low and moment < low) or (high and moment > high):
                    return False
            if text:
                titles = " ".join(
                    str((line.get("item") or {}).get("title", "")).lower()
                    for line in order.get("order_items") or []
                )
                if text != str(order.get("id")) and text not in titles:
                    return False
            return True

        sort_field = "date_closed" if role == "seller" else "date_created"

        def sort_key(order: dict[str, Any]) -> tuple[datetime, int]:
            moment = parse_stamp(order.get(sort_field)) or parse_stamp(order.get("date_created"))
            return (moment or datetime.min.replace(tzinfo=UTC), int(order["id"]))

        matches = sorted(
            (s.order for s in state.orders.values() if keep(s.order)),
            key=sort_key,
            reverse=sort == "date_desc",
        )
        body: dict[str, Any] = {
            "results": [copy.deepcopy(o) for o in matches[offset : offset + limit]],
            "sort": {"id": sort, "name": SORTS[sort]},
            "available_sorts": [{"id": k, "name": v} for k, v in SORTS.items() if k != sort],
            "filters": [],
            "paging": {"total": len(matches), "offset": offset, "limit": limit},
            "display": "complete",
        }
        if text:
            body = {"query": text, **body}
        return JSONResponse(body)

    @router.get("/orders/billing-info/{site}/{billing_id}")
    async def billing_info(site: str, billing_id: str, request: Request) -> JSONResponse:
        grant = _caller(request)
        if grant is None:
            return unauthorized()
        app = state.apps.get(grant.client_id)
        if app is not None and not app.billing_access:
            return JSONResponse(
                {
                    "message": "At least one policy returned UNAUTHORIZED.",
                    "code": "PA_UNAUTHORIZED_RESULT_FROM_POLICIES",
                    "blocked_by": "PolicyAgent",
                    "status": 403,
                },
                status_code=403,
            )
        stored = state.find_billing(billing_id)
        document = stored.billing_info if stored is not None else None
        doc_site = (document or {}).get("site_id") or "MCO"
        if stored is None or document is None or doc_site != site:
            return ml_error(404, "not_found", f"Billing info {billing_id} not found")
        if _party(stored.order, "seller") != str(grant.user_id):
            return ml_error(403, "forbidden", "The caller is not the seller of the order")
        return JSONResponse(copy.deepcopy(document))

    @router.get("/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONResponse:
        grant = _caller(request)
        if grant is None:
            return unauthorized()
        if not is_id(order_id):
            return ml_error(400, "invalid_order_id", f"Invalid order id {order_id!r}")
        stored = state.orders.get(int(order_id))
        if stored is None:
            return ml_error(404, "order_not_found", f"Order {order_id} not found")
        caller = str(grant.user_id)
        if caller not in (_party(stored.order, "seller"), _party(stored.order, "buyer")):
            return ml_error(403, "not_owned_order", f"Order {order_id} is not yours")
        body = copy.deepcopy(stored.order)
        cfg = sb.cfg
        parts = [p for p in cfg.partial_content if p]
        if parts and (cfg.partial_content_times is None or cfg.partial_content_times > 0):
            if cfg.partial_content_times is not None:
                cfg.partial_content_times -= 1
            for part in parts:
                body.pop(part, None)
            return JSONResponse(
                body, status_code=206, headers={"X-Content-Missing": ",".join(parts)}
            )
        return JSONResponse(body)

    @router.get("/missed_feeds")
    async def missed_feeds(request: Request) -> JSONResponse:
        grant = _caller(request)
        if grant is None:
            return unauthorized()
        q = request.query_params
        app_id = q.get("app_id")
        if not app_id:
            return ml_error(400, "bad_request", "app_id is required")
        if app_id != grant.client_id:
            return ml_error(403, "forbidden", "The token does not belong to this application")
        topic = q.get("topic")
        if topic == "items" and not q.get("site_id"):
            return ml_error(400, "bad_request", "site_id is required for topic items")
        offset, limit = _int(q.get("offset"), 0), _int(q.get("limit"), 10)
        if offset is None or limit is None or offset < 0 or limit < 1:
            return ml_error(400, "bad_request", "Invalid offset or limit")
        sb.notifier.prune(sb.cfg)
        messages = [
            m
            for m in state.missed_feeds
            if str(m.get("application_id")) == app_id and (not topic or m.get("topic") == topic)
        ]
        return JSONResponse({"messages": copy.deepcopy(messages[offset : offset + limit])})

    return router
