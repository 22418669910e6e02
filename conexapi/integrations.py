"""Connector instances for this process, built once when its resources are opened."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis

from conexapi.kit.ratelimit import LocalRateLimiter, RedisRateLimiter
from conexapi.settings import Settings
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


def rate_limiter(redis: Redis | None) -> RateLimiter:
    """The schedules every connector paces its calls on: one per upstream account, at the
    budget each call brings (an ERP company's comes from its connection)."""
    if redis is not None:
        return RedisRateLimiter(redis)
    return LocalRateLimiter()


def build_integrations(
    http: httpx.AsyncClient, settings: Settings, limiter: RateLimiter
) -> Integrations:
    """One instance of every registered connector (``Resources.integrations``)."""
    made = Integrations()
    for name, spec in all_connectors().items():
        instance = build(spec, http, settings, limiter)
        if spec.kind == "marketplace":
            made.marketplaces[name] = instance
        else:
            made.erps[name] = instance
    return made
