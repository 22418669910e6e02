from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.context import get_request_id
from conexapi.kit.errors import NotFound, ValidationFailed
from conexapi.models import (
    Connection,
    Mapping,
    MappingKind,
    Merchant,
    OrderState,
    OrderSync,
    Pipeline,
)
from conexapi.pipelines.schemas import MappingIn, PipelineCreate
from conexapi.sync.service import request_sync
from connectors.registry import UnknownConnector, get_connector


async def _connection(
    session: AsyncSession, connection_id: int, merchant_id: int, kind: str, role: str
) -> Connection:
    conn = await session.get(Connection, connection_id)
    if conn is None or conn.merchant_id != merchant_id:
        raise NotFound(f"{role} connection {connection_id} not found.")
    try:
        spec = get_connector(conn.connector)
    except UnknownConnector:
        raise ValidationFailed(f"connector {conn.connector!r} is not installed") from None
    if spec.kind != kind:
        raise ValidationFailed(
            f"the {role} connection must be a {kind} ({conn.connector} is a {spec.kind})",
            details={"field": f"{role}_connection_id"},
        )
    return conn


async def create_pipeline(session: AsyncSession, data: PipelineCreate) -> Pipeline:
    if await session.get(Merchant, data.merchant_id) is None:
        raise NotFound(f"merchant {data.merchant_id} not found.")
    await _connection(session, data.source_connection_id, data.merchant_id, "marketplace", "source")
    await _connection(session, data.target_connection_id, data.merchant_id, "erp", "target")
    pipeline = Pipeline(
        merchant_id=data.merchant_id,
        name=data.name,
        source_connection_id=data.source_connection_id,
        target_connection_id=data.target_connection_id,
        settings=data.settings.model_dump(mode="json"),
    )
    session.add(pipeline)
    await session.flush()
    return pipeline


async def put_mappings(
    session: AsyncSession, pipeline: Pipeline, items: Sequence[MappingIn]
) -> list[Mapping]:
    """Create or update mappings, then resume the orders that were waiting for them."""
    out = []
    for item in items:
        existing = await session.scalar(
            select(Mapping).where(
                Mapping.pipeline_id == pipeline.id,
                Mapping.kind == item.kind,
                Mapping.source_value == item.source_value,
            )
        )
        if existing is None:
            existing = Mapping(
                pipeline_id=pipeline.id,
                kind=MappingKind(item.kind),
                source_value=item.source_value,
                target_value=item.target_value,
            )
            session.add(existing)
        else:
            existing.target_value = item.target_value
        out.append(existing)
    await session.flush()
    parked = await session.scalars(
        select(OrderSync)
        .where(OrderSync.pipeline_id == pipeline.id, OrderSync.state == OrderState.needs_mapping)
        .with_for_update()
    )
    for order in parked.all():
        await request_sync(session, order, "mapping", correlation_id=get_request_id())
    return out
