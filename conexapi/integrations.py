"""Connector instances for this process, built once from its resources."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from conexapi.kit.context import note_upstream_id
from conexapi.kit.ratelimit import LocalRateLimiter, RedisRateLimiter
from conexapi.kit.resources import Resources
from connectors.base import ErpConnector, MarketplaceConnector, RateLimiter, build
from connectors.registry import all_connectors


@dataclass
class Integrations:
    marketplaces: dict[str, MarketplaceConnector] = field(default_factory=dict)
    erps: dict[str, ErpConnector] = field(default_factory=dict)

    def marketplace(self, name: str) -> MarketplaceConnector:
        return self.marketplaces[name]

    def erp(self, name: str) -> ErpConnector:
        return self.erps[name]


def rate_limiter(res: Resources) -> RateLimiter:
    """The schedules every connector paces its calls on: one per upstream account, at the
    budget each call brings (an ERP company's comes from its connection)."""
    if res.redis is not None:
        return RedisRateLimiter(res.redis)
    return LocalRateLimiter()


async def _note_request_id(response: httpx.Response) -> None:
    """Keep the upstream request id of every call made during a run (for its record)."""
    request_id = response.headers.get("x-request-id")
    if request_id:
        note_upstream_id(f"{response.request.url.host}:{request_id}"[:120])


def integrations(res: Resources) -> Integrations:
    """This process's connectors (cached on its resources)."""
    found = res.extras.get("integrations")
    if isinstance(found, Integrations):
        return found
    hooks = res.http.event_hooks
    hooks["response"] = [*hooks.get("response", []), _note_request_id]
    limiter = rate_limiter(res)
    made = Integrations()
    for name, spec in all_connectors().items():
        instance = build(spec, res.http, res.settings, limiter)
        if spec.kind == "marketplace":
            made.marketplaces[name] = instance
        else:
            made.erps[name] = instance
    res.extras["integrations"] = made
    return made
