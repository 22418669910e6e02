"""How a run ends: one constructor per decision, each building a complete, frozen outcome.

The runner decides (``sync/runner.py``), an outcome says what that decision leaves on the run
and its order, and ``runner._finish`` writes it in one transaction. Nothing changes an
outcome after it is built: a retry that gives up is a new outcome (:meth:`Outcome.gave_up`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from conexapi.models import Connection, ConnectionStatus, OrderState, RunStatus
from conexapi.sync.mapping import BuyerIncomplete, MappingMissing
from conexapi.sync.policy import Decision
from connectors.errors import BudgetExhausted, ConnectorError, DataError, TransientError
from connectors.models import Invoice, Order


class ErrorClass(StrEnum):
    """Why a run did not simply succeed; stored as is in ``sync_runs.error_class`` and
    ``order_syncs.last_error_class`` (and filtered on by the API), so the values never change.

    The first four are the connectors' own classes (``ConnectorError.kind``)."""

    transient = "transient"
    auth = "auth"
    data = "data"
    permanent = "permanent"
    #: The order needs a mapping an operator has not made yet.
    mapping = "mapping"
    #: A bug of ours: retried like a transient failure, and logged with its traceback.
    internal = "internal"
    #: The pipeline is paused or stopped: the run waits, its order is left as it is.
    paused = "paused"
    #: The ERP company's request budget had no slot soon enough: nothing was sent, and the
    #: run waits in the database for the slot. Neither an attempt nor a failure.
    budget = "budget"


#: What each connector error class does to the order and its run (ARCHITECTURE: "errors
#: are classified once", by the client; the runner only acts on the class).
_OUTCOME_BY_KIND = {
    ErrorClass.transient: (OrderState.retry_scheduled, RunStatus.retry_scheduled),
    ErrorClass.auth: (OrderState.needs_reauth, RunStatus.waiting),
    ErrorClass.data: (OrderState.needs_attention, RunStatus.failed),
    ErrorClass.permanent: (OrderState.failed, RunStatus.failed),
}

#: Failures the runner expects (classified, logged without a traceback).
EXPECTED_ERRORS = (ConnectorError, MappingMissing, BuyerIncomplete)


@dataclass(frozen=True)
class Outcome:
    state: OrderState
    run_status: RunStatus
    error_class: ErrorClass | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    #: The order as fetched, when it was: its status and totals are kept on the order row.
    order: Order | None = None
    #: The ERP document created (or found) for the order.
    invoice: Invoice | None = None
    #: A connection whose credentials were refused: marked ``needs_reauth`` (if still active).
    reauth_connection_id: int | None = None

    # -- before the order is fetched ---------------------------------------------------

    @classmethod
    def invalid_order_id(cls, exc: DataError) -> Outcome:
        """The order row's id is in a spelling the marketplace never writes (a row left by a
        forged notification): fetching it would invoice another row's order again."""
        return cls(
            OrderState.needs_attention,
            RunStatus.failed,
            ErrorClass.data,
            exc.code or "invalid_order_id",
            f"{exc.message}; nothing was sent to the ERP",
        )

    @classmethod
    def key_mismatch(cls, bound: str, derived: str) -> Outcome:
        return cls(
            OrderState.needs_attention,
            RunStatus.failed,
            ErrorClass.permanent,
            "idempotency_key_mismatch",
            f"order bound to key {bound}, not {derived}",
        )

    @classmethod
    def connection_inactive(cls, role: str, conn: Connection) -> Outcome:
        """Its orders wait; the sweeper resumes them once the connection is active."""
        return cls(
            OrderState.needs_reauth
            if conn.status == ConnectionStatus.needs_reauth
            else OrderState.pending,
            RunStatus.waiting,
            ErrorClass.auth,
            f"{role}_{conn.status}",
            f"{conn.connector} connection is {conn.status}",
        )

    @classmethod
    def reauth_needed(
        cls, code: str | None, message: str, *, connection_id: int | None = None
    ) -> Outcome:
        return cls(
            OrderState.needs_reauth,
            RunStatus.waiting,
            ErrorClass.auth,
            code,
            message,
            reauth_connection_id=connection_id,
        )

    @classmethod
    def not_the_order_asked_for(cls, message: str) -> Outcome:
        return cls(
            OrderState.needs_attention,
            RunStatus.failed,
            ErrorClass.data,
            "order_id_mismatch",
            message,
        )

    # -- the policy's decisions (``sync/policy.py``) -----------------------------------

    @classmethod
    def closed(cls, order: Order) -> Outcome:
        return cls(
            OrderState.closed,
            RunStatus.succeeded,
            message=f"order {order.raw_status} before invoicing",
            order=order,
        )

    @classmethod
    def waiting_payment(cls, order: Order) -> Outcome:
        return cls(
            OrderState.waiting_payment,
            RunStatus.waiting,
            message=f"order is {order.raw_status}",
            order=order,
        )

    @classmethod
    def already_invoiced(cls, order: Order) -> Outcome:
        return cls(OrderState.invoiced, RunStatus.succeeded, order=order)

    @classmethod
    def cancelled_after_invoice(cls, order: Order) -> Outcome:
        return cls(
            OrderState.cancelled_after_invoice,
            RunStatus.succeeded,
            ErrorClass.data,
            "cancelled_after_invoice",
            f"order {order.raw_status} after invoicing: a credit note is needed",
            order=order,
        )

    @classmethod
    def fraud_risk(cls, order: Order) -> Outcome:
        return cls(
            OrderState.needs_attention,
            RunStatus.failed,
            ErrorClass.data,
            "fraud_risk_detected",
            "the marketplace flagged this order as fraud risk",
            order=order,
        )

    @classmethod
    def of_decision(cls, decision: Decision, order: Order) -> Outcome | None:
        """The outcome of every decision but ``invoice`` (None: go on and invoice)."""
        build = _BY_DECISION.get(decision)
        return build(order) if build is not None else None

    # -- after the push ----------------------------------------------------------------

    @classmethod
    def invoiced(cls, order: Order, invoice: Invoice) -> Outcome:
        return cls(OrderState.invoiced, RunStatus.succeeded, order=order, invoice=invoice)

    @classmethod
    def total_mismatch(cls, order: Order, invoice: Invoice, expected: Decimal) -> Outcome:
        """The document exists (and is kept on the order), but a person must look at it."""
        return cls(
            OrderState.needs_attention,
            RunStatus.failed,
            ErrorClass.data,
            "total_mismatch",
            f"ERP invoice total {invoice.total} differs from {expected}",
            order=order,
            invoice=invoice,
        )

    # -- failures ----------------------------------------------------------------------

    @classmethod
    def of_error(cls, exc: Exception) -> Outcome:
        if isinstance(exc, MappingMissing):
            return cls(
                OrderState.needs_mapping,
                RunStatus.waiting,
                ErrorClass.mapping,
                f"missing_{exc.kind}",
                exc.message,
            )
        if isinstance(exc, BuyerIncomplete):
            return cls(
                OrderState.retry_scheduled,
                RunStatus.retry_scheduled,
                ErrorClass.transient,
                "billing_info_pending",
                str(exc),
            )
        if isinstance(exc, BudgetExhausted):
            # Nothing was sent: the run waits in the database for the budget, not in a slot.
            return cls(
                OrderState.retry_scheduled,
                RunStatus.waiting,
                ErrorClass.budget,
                exc.code,
                str(exc),
                retry_after=exc.retry_after,
            )
        if isinstance(exc, ConnectorError):
            # The class the client gave the failure decides everything; an unclassified
            # connector error is permanent.
            kind = ErrorClass(exc.kind) if exc.kind in _OUTCOME_BY_KIND else ErrorClass.permanent
            state, status = _OUTCOME_BY_KIND[kind]
            return cls(
                state,
                status,
                kind,
                exc.code,
                str(exc),
                retry_after=exc.retry_after if isinstance(exc, TransientError) else None,
            )
        return cls(
            OrderState.retry_scheduled,
            RunStatus.retry_scheduled,
            ErrorClass.internal,
            type(exc).__name__,
            f"internal error: {exc}"[:1000],
        )

    def gave_up(self, attempts: int) -> Outcome:
        """A retry past the pipeline's retry window: the order fails for good."""
        return replace(
            self,
            state=OrderState.failed,
            run_status=RunStatus.failed,
            message=f"gave up after {attempts} attempts: {self.message}",
        )


_BY_DECISION: dict[Decision, Callable[[Order], Outcome]] = {
    Decision.close: Outcome.closed,
    Decision.wait_payment: Outcome.waiting_payment,
    Decision.already_invoiced: Outcome.already_invoiced,
    Decision.flag_cancelled_after_invoice: Outcome.cancelled_after_invoice,
    Decision.flag_fraud: Outcome.fraud_risk,
}

__all__ = ["EXPECTED_ERRORS", "ErrorClass", "Outcome"]
