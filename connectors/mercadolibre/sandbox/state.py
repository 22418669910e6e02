"""The Mercado Libre sandbox's memory: sellers, apps, grants, orders, notifications."""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import Field

from connectors.mercadolibre.mapping import parse_time
from connectors.sandbox_kit import Sandbox, SandboxConfig

#: Mercado Libre stamps ``date_created``/``date_closed``/``last_updated`` in UTC-4.
ML_LOCAL = timezone(timedelta(hours=-4))


class MLSandboxConfig(SandboxConfig):
    #: Lifetime of access tokens, in seconds (Mercado Libre: 6 h).
    expires_in: int = 21600
    #: Lifetime of authorization codes (⚠ unconfirmed for ML; Mercado Pago documents 10 min).
    code_ttl_seconds: int = 600
    #: Lifetime of refresh tokens (6 months).
    refresh_ttl_seconds: int = 15_552_000
    #: Orders created or changed through the admin API send an ``orders_v2`` notification.
    auto_notify: bool = False
    #: Seconds before each retry of an unaccepted notification; the last value repeats.
    #: Mercado Libre spreads 8 attempts over about an hour; short here so tests finish.
    notify_retry_delays: list[float] = Field(default_factory=lambda: [0.01])
    #: A delivery counts only if answered 200 within this many milliseconds.
    notify_timeout_ms: float = 500.0
    notify_max_attempts: int = 8
    #: Seconds missed notifications are kept (2 days).
    missed_feeds_retention_seconds: int = 172_800
    #: Parts ``GET /orders/{id}`` leaves out, answering 206 with ``X-Content-Missing``
    #: (``buyer``, ``feedback``, ``mediations``, ``seller``, ``shipping``).
    partial_content: list[str] = Field(default_factory=list)
    #: How many answers the partial content applies to; None for all of them.
    partial_content_times: int | None = None


def config_of(sandbox: Sandbox) -> MLSandboxConfig:
    cfg = sandbox.config
    if isinstance(cfg, MLSandboxConfig):
        return cfg
    typed = MLSandboxConfig.model_validate(cfg.model_dump())
    sandbox.config = typed
    return typed


# --- wire helpers --------------------------------------------------------------------------


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    if status == 429:
        code = message = "local_rate_limited"
    return {"message": message, "error": code, "status": status, "cause": []}


def ml_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status)


def oauth_error(code: str, message: str, status: int = 400) -> JSONResponse:
    # The official body says ``error_description``; some clients see ``message``: send both.
    return JSONResponse(
        {
            "error_description": message,
            "message": message,
            "error": code,
            "status": status,
            "cause": [],
        },
        status_code=status,
    )


INVALID_GRANT = (
    "Error validating grant. Your authorization code or refresh token may be expired "
    "or it was already used"
)


def utc_stamp(moment: datetime) -> str:
    """``2020-02-14T02:55:49.811Z``, the shape of ``date_last_updated`` and notifications."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def local_stamp(moment: datetime) -> str:
    """``2019-05-22T03:51:05.000-04:00``, the shape of ``date_created`` and friends."""
    local = moment.astimezone(ML_LOCAL)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}-04:00"


def parse_stamp(value: Any) -> datetime | None:
    # The connector's own parser: an admin-given or query stamp out of range (year 1 at
    # +14:00, the last millisecond of 9999) is no stamp, not an overflow later.
    return parse_time(value)


# --- records -------------------------------------------------------------------------------


@dataclass
class Seller:
    user_id: int
    nickname: str
    site_id: str = "MCO"
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.user_id,
            "nickname": self.nickname,
            "site_id": self.site_id,
            "country_id": "CO" if self.site_id == "MCO" else None,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "user_type": "normal",
            "status": {"site_status": "active"},
        }


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uri: str
    pkce: bool = False
    #: Without the billing permission, billing info answers 403 (as Mercado Libre does).
    billing_access: bool = True


@dataclass
class AuthCode:
    code: str
    client_id: str
    user_id: int
    redirect_uri: str
    challenge: str | None
    method: str | None
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    token: str
    client_id: str
    user_id: int
    expires_at: float
    used: bool = False
    revoked: bool = False


@dataclass
class StoredOrder:
    order: dict[str, Any]
    billing_info: dict[str, Any] | None = None


@dataclass
class NotifyTarget:
    callback_url: str
    application_id: str
    topics: list[str] = field(default_factory=list)


@dataclass
class MLState:
    sellers: dict[int, Seller] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    #: (client_id, user_id) → the only refresh token still usable ("only the last one").
    latest_refresh: dict[tuple[str, int], str] = field(default_factory=dict)
    orders: dict[int, StoredOrder] = field(default_factory=dict)
    billing_index: dict[str, int] = field(default_factory=dict)
    notify: NotifyTarget | None = None
    missed_feeds: list[dict[str, Any]] = field(default_factory=list)
    deliveries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    #: Timestamps of recent requests per application, for the rate-limit knob.
    recent: dict[str, deque[float]] = field(default_factory=dict)
    next_order_id: int = 2000009000000001

    def reset(self) -> None:
        fresh = MLState()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    # --- grants ------------------------------------------------------------------------

    def issue_tokens(self, client_id: str, user_id: int, cfg: MLSandboxConfig) -> dict[str, Any]:
        now = time.time()
        stamp = datetime.now(ML_LOCAL).strftime("%m%d%H")
        access = f"APP_USR-{client_id}-{stamp}-{secrets.token_hex(16)}-{user_id}"
        refresh = f"TG-{secrets.token_hex(12)}-{user_id}"
        self.access[access] = Grant(access, client_id, user_id, now + cfg.expires_in)
        self.refresh[refresh] = Grant(refresh, client_id, user_id, now + cfg.refresh_ttl_seconds)
        self.latest_refresh[(client_id, user_id)] = refresh
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": cfg.expires_in,
            "scope": "offline_access read write",
            "user_id": user_id,
            "refresh_token": refresh,
        }

    def token_owner(self, authorization: str | None) -> Grant | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        grant = self.access.get(authorization[7:].strip())
        if grant is None or grant.revoked or time.time() >= grant.expires_at:
            return None
        return grant

    def revoke(self, user_id: int) -> int:
        count = 0
        for grant in (*self.access.values(), *self.refresh.values()):
            if grant.user_id == user_id and not grant.revoked:
                grant.revoked = True
                count += 1
        return count

    # --- orders ------------------------------------------------------------------------

    def new_order_id(self) -> int:
        while self.next_order_id in self.orders:
            self.next_order_id += 1
        oid = self.next_order_id
        self.next_order_id += 1
        return oid

    def store_order(
        self, order: dict[str, Any], billing_info: dict[str, Any] | None
    ) -> StoredOrder:
        oid = int(order["id"])
        stored = StoredOrder(order, billing_info)
        self.orders[oid] = stored
        bid = billing_id_of(order)
        if bid is not None and billing_info is not None:
            self.billing_index[bid] = oid
        return stored

    def find_billing(self, billing_id: str) -> StoredOrder | None:
        """The order holding this billing info (orders of one pack share it)."""
        hint = self.orders.get(self.billing_index.get(billing_id, -1))
        if (
            hint is not None
            and hint.billing_info is not None
            and (billing_id_of(hint.order) == billing_id)
        ):
            return hint
        for stored in self.orders.values():
            if stored.billing_info is not None and billing_id_of(stored.order) == billing_id:
                self.billing_index[billing_id] = int(stored.order["id"])
                return stored
        return None


def billing_id_of(order: dict[str, Any]) -> str | None:
    buyer = order.get("buyer")
    info = buyer.get("billing_info") if isinstance(buyer, dict) else None
    value = info.get("id") if isinstance(info, dict) else None
    return None if value is None else str(value)


def bump_updated(order: dict[str, Any]) -> None:
    """Move ``last_updated``/``date_last_updated`` to now, strictly after the old value."""
    now = datetime.now(UTC)
    # Stamps carry milliseconds: compare at that precision, or two bumps within one
    # millisecond would print the same stamp.
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    previous = parse_stamp(order.get("date_last_updated"))
    if previous is not None and now <= previous:
        now = previous + timedelta(milliseconds=1)
    order["date_last_updated"] = utc_stamp(now)
    order["last_updated"] = local_stamp(now)


def is_id(value: str) -> bool:
    """A numeric id in ASCII digits (``str.isdigit`` also accepts "²" and other scripts)."""
    return bool(value) and value.isascii() and value.isdigit()


def new_app_secret() -> str:
    return secrets.token_urlsafe(24)


def admin_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": "bad_request", "message": message, "status": status}, status_code=status
    )
