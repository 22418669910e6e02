"""The daily report: what the marketplace sold against what the ERP has, order by order.

For a pipeline and a Colombian day: the marketplace orders sold that day (search by
update from the day's start, kept by sale day), the ERP's invoices dated from that day to
a few days later (an order is invoiced when it is paid and processed, maybe later), and
the product's own record tying invoices to orders. Siigo's list cannot filter on an
external reference (EXTERNAL_APIS §2.5.2), so each invoice is tied to its order through
the observations the product writes on every invoice, and through the product's record
only when the document names no order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from conexapi.connections.errors import ReauthRequired
from conexapi.db import unit_of_work
from conexapi.kit import jobs
from conexapi.kit.tasks import BUILD_REPORT
from conexapi.models import (
    Connection,
    ConnectionStatus,
    OrderSync,
    Pipeline,
    PipelineStatus,
    ReconciliationLine,
    ReconciliationReport,
    utcnow,
)
from conexapi.pipelines.schemas import erp_settings
from conexapi.reconcile.rules import (
    Comparison,
    InvoiceFact,
    Known,
    compare,
    day_bounds,
    sale_day,
)
from conexapi.reconcile.service import known_of
from conexapi.sync.context import SyncContext
from conexapi.sync.days import local_date, pipeline_zone, pipeline_zones
from conexapi.sync.policy import Decision, decide
from connectors.documents import PipelineRules
from connectors.errors import ConnectorError, DataError
from connectors.models import Invoice, Order

log = structlog.get_logger(__name__)


class ReportUnavailable(Exception):
    """The report cannot be built now (a connection is not usable, the day is ahead)."""


@dataclass(frozen=True)
class _Parties:
    pipeline: Pipeline
    source: Connection
    target: Connection
    settings: PipelineRules
    #: Pipelines invoicing into the same ERP account: their invoices are theirs.
    siblings: tuple[int, ...]
    #: The zone the pipeline's days are counted in.
    zone: tzinfo


async def _parties(ctx: SyncContext, pipeline_id: int) -> _Parties:
    async with ctx.res.sessionmaker() as session:
        pipeline = await session.get(Pipeline, pipeline_id)
        if pipeline is None:
            raise ReportUnavailable(f"pipeline {pipeline_id} not found")
        source = await session.get(Connection, pipeline.source_connection_id)
        target = await session.get(Connection, pipeline.target_connection_id)
        assert source is not None and target is not None
        for conn in (source, target):
            if conn.status != ConnectionStatus.active:
                raise ReportUnavailable(f"{conn.connector} connection is {conn.status}")
        siblings = await session.scalars(
            select(Pipeline.id).where(Pipeline.target_connection_id == target.id)
        )
        return _Parties(
            pipeline,
            source,
            target,
            erp_settings(target.connector, pipeline.settings),
            tuple(siblings),
            pipeline_zone(target.connector, source.connector),
        )


async def _rows(
    session: AsyncSession, pipeline_ids: Iterable[int], condition: ColumnElement[bool]
) -> list[OrderSync]:
    return list(
        await session.scalars(
            select(OrderSync).where(OrderSync.pipeline_id.in_(list(pipeline_ids)), condition)
        )
    )


async def gather(ctx: SyncContext, pipeline_id: int, day: date, now: datetime) -> Comparison:
    """Read both sides and the product's records, then :func:`compare` them."""
    p = await _parties(ctx, pipeline_id)
    start, _ = day_bounds(day, p.zone)
    today = local_date(now, p.zone)
    if day > today:
        raise ReportUnavailable(f"{day} has not begun in {p.zone}")
    token = await ctx.access_token(p.source)
    credentials = await ctx.erp_credentials(p.target)
    marketplace = ctx.integrations.marketplace(p.source.connector)
    erp = ctx.integrations.erp(p.target.connector)

    # Every order sold on the day was last updated after the day began.
    orders: list[Order] = [
        order
        async for order in marketplace.search_orders(
            token, p.source.external_account_id, start, max(now, start)
        )
        if sale_day(order, p.zone) == day
    ]
    last = min(day + timedelta(days=ctx.res.settings.report_invoice_slack_days), today)
    listed: list[Invoice] = [i async for i in erp.list_invoices(credentials, day, last)]
    day_ids = {o.external_id for o in orders}

    async with ctx.res.sessionmaker() as session:
        mine = await _rows(session, [pipeline_id], OrderSync.external_order_id.in_(list(day_ids)))
        linked = await _rows(
            session, p.siblings, OrderSync.erp_document_id.in_([i.id for i in listed])
        )
    link = {r.erp_document_id: r for r in linked}
    #: References that are no order id of the marketplace (a row made from a second
    #: spelling of an id): no record accounts for them.
    not_ids: set[str] = set()

    def order_of(invoice: Invoice, row: OrderSync | None) -> str | None:
        """The order the ERP's document names, canonical; else the product's record.

        The document first: two invoices for one sale are a duplicate whatever keys they
        were created under and whichever order rows the product tied them to (a row made
        from a second spelling of the order's id holds the second invoice).
        """
        ref = erp.order_reference(invoice, p.source.connector)
        if ref is None:
            ref = row.external_order_id if row is not None else None
        if ref is None:
            return None
        try:
            return marketplace.canonical_order_id(ref)
        except DataError:
            not_ids.add(ref)
            return ref

    facts: list[InvoiceFact] = []
    for invoice in listed:
        ref = order_of(invoice, link.get(invoice.id))
        facts.append(InvoiceFact(invoice.id, invoice.name, invoice.date, invoice.total, ref))

    # Invoices the product made for the day's orders but the listing did not show: dated
    # beyond the slack, or deleted in the ERP (then they stay missing).
    listed_ids = {i.id for i in listed}
    for row in mine:
        if row.erp_document_id and row.erp_document_id not in listed_ids:
            try:
                invoice = await erp.get_invoice(credentials, row.erp_document_id)
            except DataError as exc:
                if exc.status_code != 404 and exc.code != "not_found":
                    raise
                continue
            facts.append(
                InvoiceFact(
                    invoice.id, invoice.name, invoice.date, invoice.total, order_of(invoice, row)
                )
            )

    # Orders named by the day's other invoices: another day's sale, another pipeline's,
    # or one the marketplace does not have at all.
    named = {
        f.order_ref
        for f in facts
        if f.date == day and f.order_ref is not None and f.order_ref not in day_ids
    }
    accounted = {r.external_order_id for r in linked if r.pipeline_id != pipeline_id}
    if named - accounted:
        async with ctx.res.sessionmaker() as session:
            accounted |= {
                r.external_order_id
                for r in await _rows(
                    session, p.siblings, OrderSync.external_order_id.in_(sorted(named - accounted))
                )
            }
    for ref in sorted(named - accounted):
        try:
            found = await marketplace.fetch_order(token, ref)
        except DataError:
            continue  # not found, not this seller's, not an order id: not accounted for
        if found.account_id == p.source.external_account_id:
            accounted.add(ref)

    known: dict[str, Known] = {}
    for row in mine:
        record = known_of(row)
        assert record is not None
        known[row.external_order_id] = record
    return compare(
        day,
        orders,
        facts,
        known,
        invoiceable=lambda o: decide(o, False, p.settings) is Decision.invoice,
        # An invoice tied to no order id of the marketplace is a difference, whatever
        # row of the product holds it.
        accounted=accounted - not_ids,
    )


async def store(
    session: AsyncSession, pipeline_id: int, day: date, found: Comparison, now: datetime
) -> ReconciliationReport:
    """Write the day's report, replacing an earlier one for the same day."""
    stmt = (
        select(ReconciliationReport)
        .where(ReconciliationReport.pipeline_id == pipeline_id, ReconciliationReport.day == day)
        .with_for_update()
    )
    report = await session.scalar(stmt)
    if report is None:
        try:
            async with session.begin_nested():
                report = ReconciliationReport(pipeline_id=pipeline_id, day=day, generated_at=now)
                session.add(report)
        except IntegrityError:
            report = await session.scalar(stmt)
            assert report is not None
    else:
        await session.execute(
            delete(ReconciliationLine).where(ReconciliationLine.report_id == report.id)
        )
    report.generated_at = now
    report.orders_total = found.orders_total
    report.orders_to_invoice = found.orders_to_invoice
    report.gross_sales = found.gross_sales
    report.invoices_found = found.invoices_found
    report.invoiced_total = found.invoiced_total
    report.cancelled_orders = found.cancelled_orders
    report.other_invoices = found.other_invoices
    report.differences = len(found.lines)
    report.by_kind = found.by_kind
    report.first_seen = dict(found.first_seen)
    await session.flush()
    for line in found.lines:
        session.add(
            ReconciliationLine(
                report_id=report.id,
                kind=str(line.kind),
                external_order_id=line.external_order_id,
                order_status=line.order_status,
                expected_total=line.expected_total,
                invoiced_total=line.invoiced_total,
                invoices=[i.as_json() for i in line.invoices],
                detail=line.detail[:500],
            )
        )
    await session.flush()
    return report


async def build_report(
    ctx: SyncContext, pipeline_id: int, day: date, *, now: datetime | None = None
) -> int:
    """Build and store the report of ``pipeline_id`` for ``day``; returns its id."""
    now = now or utcnow()
    found = await gather(ctx, pipeline_id, day, now)
    async with unit_of_work(ctx.res.sessionmaker) as session:
        report = await store(session, pipeline_id, day, found, now)
        report_id = report.id
    log.info(
        "reconciliation_report",
        pipeline_id=pipeline_id,
        day=day.isoformat(),
        orders_to_invoice=found.orders_to_invoice,
        invoices_found=found.invoices_found,
        differences=len(found.lines),
        **{f"kind_{k}": v for k, v in found.by_kind.items()},
    )
    return report_id


async def report_all(ctx: SyncContext, now: datetime | None = None) -> int:
    """The beat job: yesterday's and today's report for every pipeline that invoices."""
    now = now or utcnow()
    async with ctx.res.sessionmaker() as session:
        zones = await pipeline_zones(
            session,
            or_(
                Pipeline.status == PipelineStatus.active,
                Pipeline.status == PipelineStatus.paused,
            ),
        )
    batch = []
    for pipeline_id, zone in zones.items():
        today = local_date(now, zone)
        for day in (today - timedelta(days=1), today):
            batch.append(jobs.Job(BUILD_REPORT, (pipeline_id, day.toordinal())))
    if batch:
        await jobs.send_now(batch)
    return len(batch)


async def build_report_job(ctx: SyncContext, pipeline_id: int, day_ordinal: int) -> int | None:
    """The job's body: a report that cannot be built now is built by the next beat, and
    the day's previous report stays meanwhile."""
    day = date.fromordinal(day_ordinal)
    try:
        return await build_report(ctx, pipeline_id, day)
    except (ReportUnavailable, ReauthRequired, ConnectorError) as exc:
        log.warning(
            "reconciliation_report_not_built",
            pipeline_id=pipeline_id,
            day=day.isoformat(),
            error=str(exc),
        )
        return None
