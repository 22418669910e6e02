"""Which calendar a pipeline counts its days in: its connectors' time zone.

Invoice dates, a sale's day and the days of the reconciliation report are local days of
the services a pipeline joins; each connector spec says its zone. The ERP's zone comes
first (the invoice date is the ERP's), then the marketplace's; UTC when neither has one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from conexapi.models import Connection, Pipeline
from connectors.registry import UnknownConnector, get_connector


def connector_zone(name: str) -> tzinfo | None:
    try:
        return get_connector(name).time_zone
    except UnknownConnector:
        # A connector that is not installed as a package (a test's fake) has no zone.
        return None


def pipeline_zone(target: str, source: str) -> tzinfo:
    """The zone of a pipeline from ``source`` (marketplace) into ``target`` (ERP)."""
    return connector_zone(target) or connector_zone(source) or UTC


def local_date(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


async def pipeline_zones(
    session: AsyncSession, where: ColumnElement[bool] | None = None
) -> dict[int, tzinfo]:
    """The zone of every pipeline matching ``where`` (all of them by default), by id in
    ascending order."""
    source, target = aliased(Connection, name="source"), aliased(Connection, name="target")
    query = (
        select(Pipeline.id, source.connector, target.connector)
        .join(source, source.id == Pipeline.source_connection_id)
        .join(target, target.id == Pipeline.target_connection_id)
        .order_by(Pipeline.id)
    )
    if where is not None:
        query = query.where(where)
    rows = await session.execute(query)
    return {pid: pipeline_zone(tgt, src) for pid, src, tgt in rows.all()}
