"""The ERP connector contract: what every ERP connector must do against its sandbox.

A connector's test module subclasses :class:`ErpContract` and provides an ``erp`` fixture
returning an :class:`ErpHarness`: the connector under test, pointed at its sandbox, plus
the few sandbox controls the contract needs (new account, products, counting what was
stored, injecting faults, expiring sessions)::

    class TestAcmeContract(ErpContract):
        @pytest.fixture
        def erp(self, acme_harness: AcmeHarness) -> ErpHarness:
            return acme_harness
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

import pytest
from pydantic import SecretStr

from connectors.base import ErpConnector
from connectors.errors import AuthError, DataError, RateLimited, TransientError
from connectors.models import CustomerSpec, ErpCredentials, InvoiceDraft, RateBudget

Operation = Literal["create_invoice", "find_product", "ensure_customer", "get_invoice"]
#: ``rate_limited``: the next call answers 429; ``timeout``: it never answers and does
#: nothing; ``timeout_after_commit``: it does the work, then never answers.
Fault = Literal["rate_limited", "timeout", "timeout_after_commit"]


@dataclass
class ErpAccount:
    credentials: ErpCredentials
    details: dict[str, Any] = field(default_factory=dict)


class ErpHarness(Protocol):
    @property
    def connector(self) -> ErpConnector:
        """The connector under test, pointed at the sandbox."""
        ...

    @property
    def total_mismatch_code(self) -> str:
        """The DataError code the ERP gives when payments do not add up to the total."""
        ...

    async def new_account(self) -> ErpAccount: ...

    async def add_product(self, account: ErpAccount, code: str) -> None: ...

    def draft(
        self,
        account: ErpAccount,
        customer_identification: str,
        lines: Sequence[tuple[str, Decimal, Decimal]],
        payment_delta: Decimal = Decimal(0),
    ) -> InvoiceDraft:
        """An invoice for today with ``(code, quantity, unit price before tax)`` lines, a
        19 % VAT on each, and one payment of the ERP's own total plus ``payment_delta``."""
        ...

    async def stored_invoices(self, account: ErpAccount) -> int: ...

    async def stored_customers(self, account: ErpAccount) -> int: ...

    async def inject(self, operation: Operation, fault: Fault) -> None:
        """Make the next request of ``operation`` fail that way (once)."""
        ...

    async def expire_sessions(self, account: ErpAccount) -> None:
        """Invalidate the account's tokens on the ERP side, behind the connector's back."""
        ...

    async def sessions_opened(self, account: ErpAccount) -> int: ...


def buyer(identification: str = "1020304050") -> CustomerSpec:
    return CustomerSpec(
        id_type="13",
        identification=identification,
        person_type="person",
        first_name="María",
        last_name="Gómez",
        email="maria.gomez@correo.example",
        phone="+57 300 123 4567",
    )


class ErpContract:
    """Inherit this and provide the ``erp`` fixture."""

    @pytest.fixture
    async def account(self, erp: ErpHarness) -> ErpAccount:
        account = await erp.new_account()
        await erp.add_product(account, "SKU-1")
        await erp.add_product(account, "SKU-2")
        return account

    async def invoiceable(self, erp: ErpHarness, account: ErpAccount) -> InvoiceDraft:
        customer = buyer()
        await erp.connector.ensure_customer(account.credentials, customer)
        return erp.draft(
            account,
            customer.identification,
            [("SKU-1", Decimal(2), Decimal("1069.77")), ("SKU-2", Decimal(1), Decimal("8403.36"))],
        )

    # --- request budget ---------------------------------------------------------------

    def test_every_mode_has_a_budget_and_the_connection_s_own_wins(self, erp: ErpHarness) -> None:
        connector = erp.connector
        budgets = {mode: connector.rate_budget(mode) for mode in connector.modes}
        assert all(isinstance(b, RateBudget) for b in budgets.values())
        default = connector.rate_budget(None)
        if connector.modes:
            assert default == budgets[connector.modes[0]]
        own = connector.rate_budget(connector.modes[0] if connector.modes else None, 3)
        assert own.requests == 3 and own.window_seconds == default.window_seconds
        with pytest.raises(ValueError):
            connector.rate_budget("no-such-mode")

    # --- session ----------------------------------------------------------------------

    async def test_authenticate(self, erp: ErpHarness, account: ErpAccount) -> None:
        session = await erp.connector.authenticate(account.credentials)
        assert session.access_token.get_secret_value()
        assert session.expires_at > datetime.now(UTC)

    async def test_bad_credentials_are_an_auth_error(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        wrong = ErpCredentials(
            username=account.credentials.username, access_key=SecretStr("not-the-key")
        )
        with pytest.raises(AuthError):
            await erp.connector.authenticate(wrong)

    async def test_expired_session_is_renewed_transparently(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        assert await erp.connector.find_product(account.credentials, "SKU-1") is not None
        opened = await erp.sessions_opened(account)
        await erp.expire_sessions(account)
        product = await erp.connector.find_product(account.credentials, "SKU-1")
        assert product is not None and product.code == "SKU-1"
        assert await erp.sessions_opened(account) == opened + 1

    # --- customers and products -------------------------------------------------------

    async def test_ensure_customer_is_idempotent(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        first = await erp.connector.ensure_customer(account.credentials, buyer())
        second = await erp.connector.ensure_customer(account.credentials, buyer())
        assert first.created and not second.created
        assert first.id == second.id
        assert first.identification == "1020304050"
        assert await erp.stored_customers(account) == 1

    async def test_concurrent_ensure_customer_creates_one(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        refs = await asyncio.gather(
            *(erp.connector.ensure_customer(account.credentials, buyer()) for _ in range(3))
        )
        assert len({ref.id for ref in refs}) == 1
        assert await erp.stored_customers(account) == 1

    async def test_find_product(self, erp: ErpHarness, account: ErpAccount) -> None:
        product = await erp.connector.find_product(account.credentials, "SKU-2")
        assert product is not None
        assert product.code == "SKU-2" and product.active
        assert await erp.connector.find_product(account.credentials, "NOPE-9") is None

    # --- invoices ---------------------------------------------------------------------

    async def test_create_invoice_twice_with_one_key_gives_one_invoice(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        draft = await self.invoiceable(erp, account)
        first = await erp.connector.create_invoice(account.credentials, draft, "ORDER1001")
        again = await erp.connector.create_invoice(account.credentials, draft, "ORDER1001")
        assert not first.replayed and again.replayed
        assert (again.id, again.name, again.total) == (first.id, first.name, first.total)
        assert first.total == draft.payments[0].value
        assert first.idempotency_key == "ORDER1001"
        assert await erp.stored_invoices(account) == 1

    async def test_get_invoice(self, erp: ErpHarness, account: ErpAccount) -> None:
        draft = await self.invoiceable(erp, account)
        created = await erp.connector.create_invoice(account.credentials, draft, "ORDER1002")
        fetched = await erp.connector.get_invoice(account.credentials, created.id)
        assert (fetched.id, fetched.name, fetched.number, fetched.total, fetched.date) == (
            created.id,
            created.name,
            created.number,
            created.total,
            created.date,
        )
        assert fetched.customer_identification == draft.customer_identification

    async def test_list_invoices_pages_to_the_end(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        draft = await self.invoiceable(erp, account)
        created = set()
        for n in range(27):
            invoice = await erp.connector.create_invoice(account.credentials, draft, f"LIST{n}")
            created.add(invoice.id)
        listed = [
            invoice.id
            async for invoice in erp.connector.list_invoices(
                account.credentials, draft.date, draft.date
            )
        ]
        assert len(listed) == 27
        assert set(listed) == created
        outside = [
            invoice
            async for invoice in erp.connector.list_invoices(
                account.credentials,
                draft.date.replace(year=draft.date.year - 1),
                draft.date.replace(year=draft.date.year - 1),
            )
        ]
        assert outside == []

    async def test_payments_not_adding_up_is_a_data_error(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        good = await self.invoiceable(erp, account)
        bad = erp.draft(
            account,
            good.customer_identification,
            [("SKU-1", Decimal(2), Decimal("1069.77"))],
            payment_delta=Decimal("-0.01"),
        )
        with pytest.raises(DataError) as caught:
            await erp.connector.create_invoice(account.credentials, bad, "ORDER1003")
        assert caught.value.code == erp.total_mismatch_code
        assert await erp.stored_invoices(account) == 0

    # --- faults -----------------------------------------------------------------------

    async def test_rate_limited_is_transient(self, erp: ErpHarness, account: ErpAccount) -> None:
        await erp.connector.find_product(account.credentials, "SKU-1")
        await erp.inject("find_product", "rate_limited")
        # RateLimited (a TransientError): what the client pushes the schedule back on.
        with pytest.raises(RateLimited) as caught:
            await erp.connector.find_product(account.credentials, "SKU-1")
        assert caught.value.status_code == 429
        assert await erp.connector.find_product(account.credentials, "SKU-1") is not None

    async def test_timeout_is_transient(self, erp: ErpHarness, account: ErpAccount) -> None:
        await erp.connector.find_product(account.credentials, "SKU-1")
        await erp.inject("find_product", "timeout")
        with pytest.raises(TransientError):
            await erp.connector.find_product(account.credentials, "SKU-1")
        assert await erp.connector.find_product(account.credentials, "SKU-1") is not None

    async def test_retry_after_a_lost_answer_returns_the_one_invoice(
        self, erp: ErpHarness, account: ErpAccount
    ) -> None:
        draft = await self.invoiceable(erp, account)
        await erp.inject("create_invoice", "timeout_after_commit")
        with pytest.raises(TransientError):
            await erp.connector.create_invoice(account.credentials, draft, "ORDER1004")
        assert await erp.stored_invoices(account) == 1
        retried = await erp.connector.create_invoice(account.credentials, draft, "ORDER1004")
        assert retried.replayed
        assert await erp.stored_invoices(account) == 1
        fetched = await erp.connector.get_invoice(account.credentials, retried.id)
        assert fetched.total == draft.payments[0].value
