"""Every way a run ends is one complete, frozen outcome, with the error classes stored today."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from conexapi.models import OrderState, RunStatus
from conexapi.sync.outcome import ErrorClass, Outcome
from conexapi.sync.policy import Decision
from connectors.errors import (
    AuthError,
    ConnectorError,
    DataError,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.models import BuyerIdentity, Order, OrderStatus


def _order() -> Order:
    return Order.model_validate(
        {
            "connector": "shop",
            "external_id": "1",
            "account_id": "a",
            "status": OrderStatus.cancelled,
            "raw_status": "cancelled",
            "currency": "USD",
            "created_at": datetime(2026, 3, 1, tzinfo=UTC),
            "lines": [],
            "total_amount": Decimal(10),
            "buyer": BuyerIdentity(),
        }
    )


def test_every_decision_but_invoice_ends_the_run_with_its_own_outcome() -> None:
    order = _order()
    assert Outcome.of_decision(Decision.invoice, order) is None
    ended = {d: Outcome.of_decision(d, order) for d in Decision if d is not Decision.invoice}
    assert all(out is not None and out.order is order for out in ended.values()), ended
    assert {d: out.state for d, out in ended.items() if out is not None} == {
        Decision.close: OrderState.closed,
        Decision.wait_payment: OrderState.waiting_payment,
        Decision.already_invoiced: OrderState.invoiced,
        Decision.flag_cancelled_after_invoice: OrderState.cancelled_after_invoice,
        Decision.flag_fraud: OrderState.needs_attention,
    }


def test_error_classes_keep_the_strings_stored_and_filtered_on_today() -> None:
    assert {c.value for c in ErrorClass} == {
        "transient",
        "auth",
        "data",
        "permanent",
        "mapping",
        "internal",
        "paused",
        "budget",  # a wait for the ERP company's request budget (neither attempt nor failure)
    }


@pytest.mark.parametrize(
    ("exc", "error_class", "state", "status"),
    [
        (
            RateLimited("slow down", retry_after=7),
            "transient",
            OrderState.retry_scheduled,
            RunStatus.retry_scheduled,
        ),
        (AuthError("revoked"), "auth", OrderState.needs_reauth, RunStatus.waiting),
        (DataError("bad"), "data", OrderState.needs_attention, RunStatus.failed),
        (PermanentError("no"), "permanent", OrderState.failed, RunStatus.failed),
        # A connector error no client classified is permanent, not retried blindly.
        (ConnectorError("?"), "permanent", OrderState.failed, RunStatus.failed),
        (KeyError("bug"), "internal", OrderState.retry_scheduled, RunStatus.retry_scheduled),
    ],
)
def test_a_failure_is_classified_by_the_class_its_client_gave_it(
    exc: Exception, error_class: str, state: OrderState, status: RunStatus
) -> None:
    out = Outcome.of_error(exc)
    assert (out.error_class, out.state, out.run_status) == (error_class, state, status)
    assert out.retry_after == (exc.retry_after if isinstance(exc, TransientError) else None)


def test_an_outcome_is_never_changed_after_it_is_built() -> None:
    retry = Outcome.of_error(TransientError("timeout"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        retry.state = OrderState.failed  # type: ignore[misc]
    final = retry.gave_up(attempts=9)
    assert (final.state, final.run_status) == (OrderState.failed, RunStatus.failed)
    assert final.message == "gave up after 9 attempts: timeout"
    assert (retry.state, retry.message) == (OrderState.retry_scheduled, "timeout")
