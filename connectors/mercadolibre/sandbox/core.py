"""What every route of the sandbox shares: state, knobs, the notifier, the rate limit."""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.types import Scope

from connectors.mercadolibre.sandbox.notifier import Notifier
from connectors.mercadolibre.sandbox.state import (
    MLSandboxConfig,
    MLState,
    config_of,
    error_body,
)
from connectors.sandbox_kit import Sandbox


class MLSandbox:
    def __init__(self, notify_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.state = MLState()
        self.kit = Sandbox(
            "mercadolibre", error_body, config=MLSandboxConfig(), reset_hook=self.state.reset
        )
        self.kit.rate_limiter = self._rate_limit
        self.notifier = Notifier(self.state, notify_transport)

    @property
    def cfg(self) -> MLSandboxConfig:
        return config_of(self.kit)

    # --- rate limit knob: {"requests_per_second": N} and/or {"requests_per_minute": N} ---

    def _app_key(self, scope: Scope, body: bytes) -> str:
        """Mercado Libre limits per client id (application)."""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                grant = self.state.token_owner(value.decode("latin-1"))
                if grant is not None:
                    return grant.client_id
        if scope.get("path") == "/oauth/token" and body:
            client = parse_qs(body.decode("utf-8", "replace")).get("client_id")
            if client:
                return client[0]
        return "anonymous"

    def _rate_limit(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]] | None:
        rules = self.cfg.rate_limit
        windows = [
            (span, float(limit))
            for span, limit in (
                (1.0, rules.get("requests_per_second")),
                (60.0, rules.get("requests_per_minute")),
            )
            if limit
        ]
        if not windows:
            return None
        key = self._app_key(scope, body)
        recent = self.state.recent.setdefault(key, deque())
        now = time.monotonic()
        longest = max(span for span, _ in windows)
        while recent and now - recent[0] > longest:
            recent.popleft()
        for span, limit in windows:
            if sum(1 for t in recent if now - t <= span) >= limit:
                return 429, error_body(429, "local_rate_limited", "local_rate_limited")
        recent.append(now)
        return None

    # --- notifications -----------------------------------------------------------------

    def auto_notify(self, order: dict[str, Any]) -> None:
        """Notify ``orders_v2`` for an order the admin API created or changed."""
        target = self.state.notify
        if not self.cfg.auto_notify or target is None:
            return
        if target.topics and "orders_v2" not in target.topics:
            return
        seller = (order.get("seller") or {}).get("id")
        if seller is None:
            return
        body = self.notifier.event(
            target,
            topic="orders_v2",
            resource=f"/orders/{order['id']}",
            user_id=seller,
            with_id=None,
            user_id_as_string=False,
        )
        self.notifier.in_background(self.notifier.deliver(target, body, self.cfg))
