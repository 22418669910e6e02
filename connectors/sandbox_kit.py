"""What every sandbox shares: the admin routes and knobs of ``shared/SANDBOX.md``.

A sandbox is a FastAPI app whose real routes behave like the service; :class:`Sandbox`
wraps them with a middleware that logs each request and applies the fault knobs, and
mounts the common admin routes under ``/_sandbox/``. Service-specific behaviour (error
body shapes, rate limits) comes in through the hooks passed to :class:`Sandbox`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sandbox"
LOGGED_HEADERS = (
    "authorization",
    "partner-id",
    "idempotency-key",
    "content-type",
    "x-request-id",
    "user-agent",
)


class FailRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: ``"METHOD /path/glob"`` or ``"/path/glob"``, e.g. ``"POST /v1/invoices"``.
    route: str
    #: HTTP status to answer, or ``"timeout"`` to hang without doing the work.
    status: int | str = 503
    times: int = 1


class LatencyDist(BaseModel):
    p50: float = 0.0
    p99: float = 0.0


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    latency_ms: float | LatencyDist = 0.0
    #: Route pattern → probability (0..1) of answering 500 instead of doing the work.
    error_rate: dict[str, float] = Field(default_factory=dict)
    fail_next: list[FailRule] = Field(default_factory=list)
    #: Rules whose request does its work, then never answers (the client times out).
    timeout_after_commit: list[FailRule] = Field(default_factory=list)
    #: None, ``"503"`` (every real route answers 503) or ``"hang"``.
    outage: str | None = None
    #: Seconds a hung request waits before the sandbox drops it.
    hang_seconds: float = 30.0
    #: Service-specific; each sandbox documents its own shape.
    rate_limit: dict[str, Any] = Field(default_factory=dict)


def _matches(pattern: str, method: str, path: str) -> bool:
    if " " in pattern:
        want_method, want_path = pattern.split(" ", 1)
        if want_method.upper() != method.upper():
            return False
    else:
        want_path = pattern
    return fnmatch.fnmatchcase(path, want_path)


class RequestLog:
    def __init__(self, maxlen: int = 20000) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def add(self, entry: dict[str, Any]) -> None:
        self._seq += 1
        entry["seq"] = self._seq
        self.entries.append(entry)

    def query(
        self, path: str | None = None, method: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for e in self.entries:
            if path and not fnmatch.fnmatchcase(e["path"], path) and e["path"] != path:
                continue
            if method and e["method"] != method.upper():
                continue
            if since is not None and e["at"] < since:
                continue
            out.append(e)
        return out


#: ``error_body(status, code, message)`` → the service's own error JSON.
ErrorBody = Callable[[int, str, str], dict[str, Any]]


class Sandbox:
    def __init__(
        self,
        name: str,
        error_body: ErrorBody,
        config: SandboxConfig | None = None,
        reset_hook: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.error_body = error_body
        self.config = config or SandboxConfig()
        self._initial_config = self.config.model_copy(deep=True)
        self.log = RequestLog()
        self.reset_hook = reset_hook
        self.rate_limiter: Callable[[Scope, bytes], tuple[int, dict[str, Any]] | None] | None = None
        self.rng = random.Random()

    # --- knobs -----------------------------------------------------------------------

    def _take(self, rules: list[FailRule], method: str, path: str) -> FailRule | None:
        for rule in rules:
            if rule.times > 0 and _matches(rule.route, method, path):
                rule.times -= 1
                if rule.times <= 0:
                    rules.remove(rule)
                return rule
        return None

    def _latency(self) -> float:
        lat = self.config.latency_ms
        if isinstance(lat, LatencyDist):
            if lat.p99 <= 0:
                return lat.p50 / 1000
            # Log-normal fitted to the two quantiles (z(0.99) = 2.326).
            import math

            mu = math.log(max(lat.p50, 0.001))
            sigma = max((math.log(max(lat.p99, 0.001)) - mu) / 2.326, 0.0)
            return self.rng.lognormvariate(mu, sigma) / 1000
        return float(lat) / 1000

    def reset(self) -> None:
        self.config = self._initial_config.model_copy(deep=True)
        self.log = RequestLog()
        if self.reset_hook:
            self.reset_hook()

    # --- wiring ----------------------------------------------------------------------

    def admin_router(self) -> APIRouter:
        router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])

        @router.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok", "sandbox": self.name}

        @router.get("/config")
        async def get_config() -> dict[str, Any]:
            return self.config.model_dump()

        @router.patch("/config")
        async def patch_config(changes: dict[str, Any]) -> dict[str, Any]:
            merged = {**self.config.model_dump(), **changes}
            # Keep the sandbox's own config subclass so its extra knobs stay typed.
            self.config = type(self.config).model_validate(merged)
            return self.config.model_dump()

        @router.get("/requests")
        async def requests(
            path: str | None = None, method: str | None = None, since: float | None = None
        ) -> list[dict[str, Any]]:
            return self.log.query(path, method, since)

        @router.post("/reset")
        async def reset() -> dict[str, str]:
            self.reset()
            return {"status": "reset"}

        return router

    def install(self, app: FastAPI) -> None:
        app.include_router(self.admin_router())
        app.add_middleware(_KnobsFactory, sandbox=self)


class _KnobsFactory:
    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.inner = _KnobsMiddleware(app, sandbox)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)


class _KnobsMiddleware:
    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sb = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        sb = self.sb
        cfg = sb.config
        method, path = scope["method"], scope["path"]
        started = time.perf_counter()
        # Read the body once so it can be logged and replayed to the app.
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def _receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry: dict[str, Any] = {
            "at": time.time(),
            "time": datetime.now(UTC).isoformat(),
            "method": method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": {h: headers[h] for h in LOGGED_HEADERS if h in headers},
        }
        if method in ("POST", "PUT", "PATCH"):
            try:
                entry["body"] = json.loads(body) if body else None
            except ValueError:
                entry["body"] = body.decode("utf-8", "replace")[:4000]
        status_holder = {"status": 0}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        async def _finish() -> None:
            entry["status"] = status_holder["status"]
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
            sb.log.add(entry)

        delay = sb._latency()
        if delay > 0:
            await asyncio.sleep(delay)

        if cfg.outage == "hang":
            entry["fault"] = "outage:hang"
            status_holder["status"] = 0
            await _finish()
            await asyncio.sleep(cfg.hang_seconds)
            return
        if cfg.outage:
            entry["fault"] = "outage"
            await self._error(_send, 503, "service_unavailable", "Sandbox outage")
            await _finish()
            return

        rule = sb._take(cfg.fail_next, method, path)
        if rule is not None:
            entry["fault"] = f"fail_next:{rule.status}"
            if rule.status == "timeout":
                await _finish()
                await asyncio.sleep(cfg.hang_seconds)
                return
            status = int(rule.status)
            await self._error(_send, status, _code_for(status), "Injected failure")
            await _finish()
            return

        for pattern, rate in cfg.error_rate.items():
            if _matches(pattern, method, path) and sb.rng.random() < rate:
                entry["fault"] = "error_rate"
                await self._error(_send, 500, "internal_error", "Injected error")
                await _finish()
                return

        if sb.rate_limiter is not None:
            limited = sb.rate_limiter(scope, body)
            if limited is not None:
                status, payload = limited
                entry["fault"] = "rate_limit"
                await _send_json(_send, status, payload)
                await _finish()
                return

        hang_rule = sb._take(cfg.timeout_after_commit, method, path)
        if hang_rule is not None:
            entry["fault"] = "timeout_after_commit"

            async def _swallow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_holder["status"] = message["status"]

            await self.app(scope, _receive, _swallow)
            await _finish()
            await asyncio.sleep(cfg.hang_seconds)
            return

        await self.app(scope, _receive, _send)
        await _finish()

    async def _error(self, send: Send, status: int, code: str, message: str) -> None:
        await _send_json(send, status, self.sb.error_body(status, code, message))


def _code_for(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        408: "request_timeout",
        429: "too_many_requests",
        500: "internal_error",
        502: "bad_gateway",
        503: "service_unavailable",
        504: "gateway_timeout",
    }.get(status, "error")


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    raw = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
