"""Deliver notifications the way Mercado Libre does (EXTERNAL_APIS §1.1.3).

A delivery is accepted only when the callback answers 200 within ``notify_timeout_ms``.
Anything else is retried with ``attempts`` + 1 and a new ``sent``, keeping ``received`` and
``_id``; after ``notify_max_attempts`` the notification lands in missed feeds.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.mercadolibre.sandbox.state import (
    MLSandboxConfig,
    MLState,
    NotifyTarget,
    is_id,
    parse_stamp,
    utc_stamp,
)


class Notifier:
    def __init__(self, state: MLState, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.state = state
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def _http(self) -> httpx.AsyncClient:
        # Built on first use (not at import, not per request): the app's lifespan closes it.
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self.transport, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        await self.flush()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def flush(self) -> int:
        """Wait for background deliveries (auto-notify, ``wait: false``); how many ran."""
        count = 0
        while self._tasks:
            pending = list(self._tasks)
            count += len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        return count

    def in_background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one event ---------------------------------------------------------------------

    def event(
        self,
        target: NotifyTarget,
        *,
        topic: str,
        resource: str,
        user_id: int | str,
        with_id: bool | None,
        user_id_as_string: bool,
    ) -> dict[str, Any]:
        if with_id is None:
            # The documented orders_v2 example has no ``_id``; other topics do.
            with_id = topic != "orders_v2"
        app_id: int | str = (
            int(target.application_id) if is_id(target.application_id) else target.application_id
        )
        body: dict[str, Any] = {}
        if with_id:
            body["_id"] = secrets.token_hex(12)
        body.update(
            {
                "resource": resource,
                "user_id": str(user_id) if user_id_as_string else int(user_id),
                "topic": topic,
                "application_id": app_id,
                "attempts": 1,
                "sent": None,
                "received": utc_stamp(datetime.now(UTC)),
            }
        )
        return body

    async def deliver(
        self,
        target: NotifyTarget,
        body: dict[str, Any],
        cfg: MLSandboxConfig,
        *,
        drop_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> dict[str, Any]:
        rng = rng or random.Random()
        deadline = cfg.notify_timeout_ms / 1000
        record: dict[str, Any] = {
            "notification": body,
            "callback_url": target.callback_url,
            "deliveries": [],
            "accepted": False,
            "missed": False,
        }
        self.state.deliveries.append(record)
        last_request: dict[str, Any] = {}
        last_response: dict[str, Any] = {}
        for attempt in range(1, max(cfg.notify_max_attempts, 1) + 1):
            if attempt > 1:
                delays = cfg.notify_retry_delays or [0.0]
                await asyncio.sleep(max(delays[min(attempt - 2, len(delays) - 1)], 0.0))
            body["attempts"] = attempt
            body["sent"] = utc_stamp(datetime.now(UTC))
            raw = json.dumps(body, separators=(",", ":"))
            headers = {
                "accept": "application/json",
                "content-type": "application/json",
                "content-length": str(len(raw.encode())),
            }
            delivery: dict[str, Any] = {"attempt": attempt, "sent": body["sent"]}
            last_request = {"url": target.callback_url, "headers": headers, "data": raw}
            if drop_rate > 0 and rng.random() < drop_rate:
                delivery.update({"status": None, "dropped": True, "req_time": 0, "accepted": False})
                last_response = {"req_time": 0, "http_code": 0, "body": "", "headers": {}}
                record["deliveries"].append(delivery)
                continue
            started = time.perf_counter()
            status: int | None = None
            response_body = ""
            response_headers: dict[str, str] = {}
            error: str | None = None
            try:
                response = await self._http().post(
                    target.callback_url,
                    content=raw.encode(),
                    headers=headers,
                    # Wait a little past the deadline so a late 200 is seen and recorded as
                    # late, the way ML's missed feeds show ``req_time``.
                    timeout=httpx.Timeout(deadline + max(deadline, 0.5)),
                )
                status = response.status_code
                response_body = response.text[:2000]
                response_headers = dict(response.headers)
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            accepted = status == 200 and elapsed_ms <= cfg.notify_timeout_ms
            delivery.update(
                {"status": status, "req_time": elapsed_ms, "accepted": accepted, "error": error}
            )
            last_response = {
                "req_time": elapsed_ms,
                "http_code": status or 0,
                "body": response_body,
                "headers": response_headers,
            }
            record["deliveries"].append(delivery)
            if accepted:
                record["accepted"] = True
                return record
        record["missed"] = True
        self._miss(body, last_request, last_response, cfg)
        return record

    def _miss(
        self,
        body: dict[str, Any],
        request: dict[str, Any],
        response: dict[str, Any],
        cfg: MLSandboxConfig,
    ) -> None:
        entry = {
            "_id": body.get("_id") or secrets.token_hex(12),
            **{k: v for k, v in body.items() if k != "_id"},
            "request": request,
            "response": response,
        }
        self.state.missed_feeds.append(entry)
        self.prune(cfg)

    def prune(self, cfg: MLSandboxConfig) -> None:
        horizon = datetime.now(UTC) - timedelta(seconds=cfg.missed_feeds_retention_seconds)
        keep = []
        for entry in self.state.missed_feeds:
            received = parse_stamp(entry.get("received"))
            if received is not None and received >= horizon:
                keep.append(entry)
        self.state.missed_feeds[:] = keep
