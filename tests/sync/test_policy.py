"""The core's decision reads the canonical fraud flag, whatever tags the marketplace uses."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from conexapi.pipelines.schemas import PipelineSettings
from conexapi.sync.policy import Decision, decide
from connectors.models import BuyerIdentity, Order, OrderStatus

SETTINGS = PipelineSettings(document_type_id="1", seller_id="2", payment_type_id="3", tax_id="4")


def paid_order(**fields: object) -> Order:
    return Order.model_validate(
        {
            "connector": "shop",
            "external_id": "1",
            "account_id": "a",
            "status": OrderStatus.paid,
            "raw_status": "paid",
            "currency": "USD",
            "created_at": datetime(2026, 3, 1, tzinfo=UTC),
            "lines": [],
            "total_amount": Decimal(10),
            "buyer": BuyerIdentity(),
            **fields,
        }
    )


def test_a_fraud_suspected_order_waits_for_a_person() -> None:
    assert decide(paid_order(fraud_suspected=True), False, SETTINGS) is Decision.flag_fraud
    # A tag is the marketplace's own word: only its connector turns it into the flag.
    assert decide(paid_order(tags=["fraud_risk_detected"]), False, SETTINGS) is Decision.invoice
