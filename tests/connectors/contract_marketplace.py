"""The contract every marketplace connector passes against its own sandbox.

A connector's test module subclasses :class:`MarketplaceContract` and provides a
``harness`` fixture yielding an object that satisfies :class:`MarketplaceHarness`: the
connector wired to its sandbox (in-process, through :class:`TimeoutASGITransport`) plus the
few sandbox operations that differ between marketplaces (consenting, seeding orders,
capturing a real notification delivery, throttling). Everything else goes through the
common admin routes of SANDBOX.md (``/_sandbox/config`` knobs).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import httpx
import pytest

from connectors.base import InboundRequest, MarketplaceConnector
from connectors.errors import AuthError, InvalidNotification, TransientError
from connectors.models import AuthorizationRequest, Order, TokenSet


class TimeoutASGITransport(httpx.ASGITransport):
    """``ASGITransport`` that honours the client's read timeout like a socket would.

    The stock transport awaits the app however long it takes, so a hanging sandbox route
    would hang the test instead of raising ``httpx.ReadTimeout``.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout") or {}
        limit = timeout.get("read")
        if limit is None:
            return await super().handle_async_request(request)
        try:
            return await asyncio.wait_for(super().handle_async_request(request), limit)
        except TimeoutError:
            raise httpx.ReadTimeout("sandbox did not answer in time", request=request) from None


class MarketplaceHarness(Protocol):
    connector: MarketplaceConnector
    #: The seller account the sandbox consents as.
    account_id: str
    #: Client for the sandbox's admin routes (``/_sandbox/...``).
    admin: httpx.AsyncClient

    async def consent(self, request: AuthorizationRequest) -> str:
        """Follow the consent URL as the seller would and return the authorization code
        (after checking that the redirect carries ``request.state`` back)."""
        ...

    async def tokens(self) -> TokenSet:
        """A fresh token pair for the seller, through consent and code exchange."""
        ...

    async def seed_orders(self, count: int) -> list[str]:
        """Create ``count`` orders for the seller, updated within the last day."""
        ...

    async def capture_notification(self, order_id: str) -> InboundRequest:
        """Have the sandbox notify about the order and return the request as delivered."""
        ...

    def forged_notifications(self, valid: InboundRequest) -> list[InboundRequest]:
        """Variants of a valid delivery that verification must reject."""
        ...

    async def throttle(self) -> None:
        """Make the next API call of the connector be rate limited (429)."""
        ...

    def order_route(self, order_id: str) -> str:
        """The ``fail_next`` route pattern of the sandbox's fetch-order call."""
        ...


async def _knobs(harness: MarketplaceHarness, **changes: object) -> None:
    response = await harness.admin.patch("/_sandbox/config", json=changes)
    assert response.status_code == 200, response.text


def _money_is_decimal(order: Order) -> None:
    assert isinstance(order.total_amount, Decimal)
    assert isinstance(order.shipping_cost, Decimal)
    assert order.lines, "an order has lines"
    for line in order.lines:
        assert isinstance(line.unit_price, Decimal)
        assert isinstance(line.quantity, Decimal)
        assert line.quantity > 0
    for payment in order.payments:
        assert isinstance(payment.amount, Decimal)


class MarketplaceContract:
    """Subclass as ``TestXxxContract`` and provide the ``harness`` fixture."""

    async def test_consent_exchange_profile(self, harness: MarketplaceHarness) -> None:
        request = harness.connector.authorization_request(state="contract-state-1")
        assert request.state == "contract-state-1"
        assert request.code_verifier
        code = await harness.consent(request)
        tokens = await harness.connector.exchange_code(code, request.code_verifier)
        assert tokens.account_id == harness.account_id
        assert tokens.refresh_token is not None
        assert tokens.expires_at > datetime.now(UTC)
        profile = await harness.connector.get_profile(tokens.access_token.get_secret_value())
        assert profile.account_id == harness.account_id

    async def test_code_is_single_use(self, harness: MarketplaceHarness) -> None:
        request = harness.connector.authorization_request(state="contract-state-2")
        code = await harness.consent(request)
        await harness.connector.exchange_code(code, request.code_verifier)
        with pytest.raises(AuthError) as caught:
            await harness.connector.exchange_code(code, request.code_verifier)
        assert caught.value.code == "invalid_grant"

    async def test_refresh_rotates_and_old_token_dies(self, harness: MarketplaceHarness) -> None:
        first = await harness.tokens()
        assert first.refresh_token is not None
        old_refresh = first.refresh_token.get_secret_value()
        second = await harness.connector.refresh(old_refresh)
        assert second.refresh_token is not None
        assert second.refresh_token.get_secret_value() != old_refresh
        assert second.access_token.get_secret_value() != first.access_token.get_secret_value()
        assert second.account_id == harness.account_id
        # The old refresh token was single-use: a second refresh is a lost race, and says so.
        with pytest.raises(AuthError) as caught:
            await harness.connector.refresh(old_refresh)
        assert caught.value.code == "invalid_grant"
        # The new pair works, for API calls and for one more refresh.
        profile = await harness.connector.get_profile(second.access_token.get_secret_value())
        assert profile.account_id == harness.account_id
        assert second.refresh_token is not None
        third = await harness.connector.refresh(second.refresh_token.get_secret_value())
        assert third.account_id == harness.account_id

    async def test_fetch_order_is_canonical(self, harness: MarketplaceHarness) -> None:
        tokens = await harness.tokens()
        [order_id] = await harness.seed_orders(1)
        order = await harness.connector.fetch_order(
            tokens.access_token.get_secret_value(), order_id
        )
        assert order.external_id == order_id
        assert order.account_id == harness.account_id
        assert order.connector == harness.connector.name
        _money_is_decimal(order)
        key = harness.connector.idempotency_key(order.external_id)
        assert key.isalnum() and len(key) <= 30
        assert key == harness.connector.idempotency_key(order_id)
        # Ids come out in their one spelling, the one the product compares and keys by.
        assert harness.connector.canonical_order_id(order.external_id) == order.external_id

    async def test_search_pages_to_the_end(self, harness: MarketplaceHarness) -> None:
        tokens = await harness.tokens()
        seeded = set(await harness.seed_orders(120))
        now = datetime.now(UTC)
        found: list[str] = []
        async for order in harness.connector.search_orders(
            tokens.access_token.get_secret_value(),
            harness.account_id,
            now - timedelta(days=2),
            now + timedelta(minutes=5),
        ):
            _money_is_decimal(order)
            assert order.account_id == harness.account_id
            found.append(order.external_id)
        assert len(found) == len(set(found)), "no order twice"
        assert set(found) == seeded

    async def test_notification_parses_and_verifies(self, harness: MarketplaceHarness) -> None:
        [order_id] = await harness.seed_orders(1)
        delivered = await harness.capture_notification(order_id)
        notification = harness.connector.parse_notification(delivered)
        assert notification.order_id == order_id
        assert notification.account_id == harness.account_id
        assert notification.ignore_reason is None
        assert 0 < len(notification.dedupe_key) <= 190
        # Parsing is pure: the same delivery gives the same key.
        assert harness.connector.parse_notification(delivered).dedupe_key == (
            notification.dedupe_key
        )
        garbage = dataclasses.replace(delivered, body=b"{not json")
        with pytest.raises(InvalidNotification):
            harness.connector.parse_notification(garbage)
        forged = harness.forged_notifications(delivered)
        assert forged, "the harness offers forgeries to reject"
        for request in forged:
            with pytest.raises(InvalidNotification):
                harness.connector.parse_notification(request)

    async def test_429_is_transient(self, harness: MarketplaceHarness) -> None:
        tokens = await harness.tokens()
        [order_id] = await harness.seed_orders(1)
        await harness.throttle()
        with pytest.raises(TransientError) as caught:
            await harness.connector.fetch_order(tokens.access_token.get_secret_value(), order_id)
        assert caught.value.status_code == 429

    async def test_timeout_is_transient(self, harness: MarketplaceHarness) -> None:
        tokens = await harness.tokens()
        [order_id] = await harness.seed_orders(1)
        await _knobs(
            harness,
            hang_seconds=30,
            fail_next=[{"route": harness.order_route(order_id), "status": "timeout"}],
        )
        with pytest.raises(TransientError) as caught:
            await harness.connector.fetch_order(tokens.access_token.get_secret_value(), order_id)
        assert caught.value.status_code is None

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    async def test_5xx_is_transient(self, harness: MarketplaceHarness, status: int) -> None:
        tokens = await harness.tokens()
        [order_id] = await harness.seed_orders(1)
        await _knobs(
            harness, fail_next=[{"route": harness.order_route(order_id), "status": status}]
        )
        with pytest.raises(TransientError) as caught:
            await harness.connector.fetch_order(tokens.access_token.get_secret_value(), order_id)
        assert caught.value.status_code == status
        # The fault was one-shot: the same call now succeeds.
        order = await harness.connector.fetch_order(
            tokens.access_token.get_secret_value(), order_id
        )
        assert order.external_id == order_id

    async def test_outage_is_transient(self, harness: MarketplaceHarness) -> None:
        tokens = await harness.tokens()
        [order_id] = await harness.seed_orders(1)
        await _knobs(harness, outage="503")
        with pytest.raises(TransientError):
            await harness.connector.fetch_order(tokens.access_token.get_secret_value(), order_id)

    async def test_401_is_auth(self, harness: MarketplaceHarness) -> None:
        [order_id] = await harness.seed_orders(1)
        with pytest.raises(AuthError) as caught:
            await harness.connector.fetch_order("not-a-token-the-sandbox-issued", order_id)
        assert caught.value.status_code == 401
