"""Test doubles and helpers: an in-memory authorization server with Mercado Libre's
single-use refresh tokens, for the token service's unit tests. The sandbox tests use the
real connector against the real sandbox instead."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.connections.service import link_marketplace_account
from conexapi.db import unit_of_work
from conexapi.kit.crypto import KeyRing
from conexapi.models import Connection, Merchant
from conexapi.models.base import utcnow
from connectors.base import InboundRequest, MarketplaceConnector
from connectors.errors import AuthError
from connectors.models import (
    AccountProfile,
    AuthorizationRequest,
    Notification,
    Order,
    TokenSet,
)

# --- an in-memory authorization server with single-use refresh tokens --------------------


@dataclass
class AuthServer:
    """Issues token pairs like Mercado Libre: each refresh token works once."""

    lifetime: timedelta = timedelta(hours=6)
    valid_refresh: dict[str, str] = field(default_factory=dict)  # refresh token → account
    valid_access: dict[str, str] = field(default_factory=dict)
    refresh_calls: int = 0
    rejected: int = 0
    fail_next: list[Exception] = field(default_factory=list)
    #: Set at the first rejected refresh.
    rejection: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def issue(self, account_id: str, expires_at: datetime | None = None) -> TokenSet:
        n = next(self._seq)
        access, refresh = f"APP_USR-test-{n}-{account_id}", f"TG-refresh{n:08d}-{account_id}"
        self.valid_access[access] = account_id
        self.valid_refresh[refresh] = account_id
        return TokenSet(
            access_token=SecretStr(access),
            refresh_token=SecretStr(refresh),
            expires_at=expires_at or utcnow() + self.lifetime,
            account_id=account_id,
        )

    def revoke(self, account_id: str) -> None:
        for table in (self.valid_refresh, self.valid_access):
            for token in [t for t, a in table.items() if a == account_id]:
                del table[token]


class FakeMarketplace(MarketplaceConnector):
    """The token half of a marketplace connector over :class:`AuthServer`."""

    name: ClassVar[str] = "mercadolibre"

    def __init__(
        self,
        server: AuthServer,
        gate: asyncio.Event | None = None,
        hold_answer: asyncio.Event | None = None,
    ) -> None:
        self.server = server
        #: When set, refresh() signals ``entered`` and waits for ``gate`` before the server
        #: sees the call.
        self.gate = gate
        self.entered = asyncio.Event()
        #: When set, the server has spent the refresh token (``spent`` is signalled) but the
        #: answer is held back until ``hold_answer`` is set.
        self.hold_answer = hold_answer
        self.spent = asyncio.Event()

    async def refresh(self, refresh_token: str) -> TokenSet:
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        await asyncio.sleep(0)
        self.server.refresh_calls += 1
        if self.server.fail_next:
            raise self.server.fail_next.pop(0)
        account = self.server.valid_refresh.pop(refresh_token, None)
        if account is None:
            self.server.rejected += 1
            self.server.rejection.set()
            raise AuthError("invalid grant", code="invalid_grant", status_code=400)
        pair = self.server.issue(account)
        if self.hold_answer is not None:
            self.spent.set()
            await self.hold_answer.wait()
        return pair

    async def get_profile(self, access_token: str) -> AccountProfile:
        account = self.server.valid_access.get(access_token)
        if account is None:
            raise AuthError("invalid token", code="invalid_token", status_code=401)
        return AccountProfile(account_id=account, nickname=f"SELLER{account}")

    def authorization_request(self, *, state: str, site: str | None = None) -> AuthorizationRequest:
        return AuthorizationRequest(
            url=f"https://auth.example/authorization?state={state}",
            state=state,
            code_verifier="v" * 50,
        )

    async def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        raise NotImplementedError

    def parse_notification(self, request: InboundRequest) -> Notification:
        raise NotImplementedError

    async def fetch_order(self, access_token: str, order_id: str) -> Order:
        raise NotImplementedError

    def search_orders(
        self, access_token: str, account_id: str, updated_from: datetime, updated_to: datetime
    ) -> Any:
        raise NotImplementedError

    def canonical_order_id(self, external_order_id: str) -> str:
        raise NotImplementedError

    def idempotency_key(self, order: Order) -> str:
        raise NotImplementedError


async def linked_connection(
    sm: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    server: AuthServer,
    merchant_id: int,
    account_id: str = "1001",
    expires_at: datetime | None = None,
) -> tuple[int, TokenSet]:
    tokens = server.issue(account_id, expires_at)
    async with unit_of_work(sm) as session:
        conn = await link_marketplace_account(
            session,
            merchant_id,
            "mercadolibre",
            tokens,
            AccountProfile(account_id=account_id, nickname=f"SELLER{account_id}"),
            keys=keys,
        )
        return conn.id, tokens


async def load(sm: async_sessionmaker[AsyncSession], connection_id: int) -> Connection:
    async with sm() as session:
        conn = await session.get(Connection, connection_id)
        assert conn is not None
        return conn


_slugs = itertools.count(1)


async def make_merchant(sm: async_sessionmaker[AsyncSession], name: str = "Tienda") -> int:
    async with unit_of_work(sm) as session:
        merchant = Merchant(name=name, slug=f"m-{next(_slugs)}-{id(sm) % 10000}")
        session.add(merchant)
        await session.flush()
        return merchant.id
