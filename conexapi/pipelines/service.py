from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.kit.context import get_request_id
from conexapi.kit.errors import Conflict, NotFound, ValidationFailed
from conexapi.models import (
    Connection,
    ConnectionStatus,
    Mapping,
    MappingKind,
    Merchant,
    OrderState,
    OrderSync,
    Pipeline,
    PipelineStatus,
)
from conexapi.pipelines.schemas import MappingIn, PipelineCreate
from conexapi.sync.retries import resume_waiting_orders
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


def target_settings(connector: str, settings: BaseModel) -> dict[str, Any]:
    """``settings`` held to the pipeline-settings model of the target ERP ``connector``, as
    stored. The request was read with any installed ERP's model; one that is not the
    target's is read again, from what the client sent, with the target's. A mismatch is
    the same 422 as the request's own validation."""
    model = get_connector(connector).pipeline_settings
    if model is None:
        raise ValidationFailed(f"connector {connector!r} declares no pipeline settings")
    if not isinstance(settings, model):
        try:
            settings = model.model_validate(settings.model_dump(mode="json", exclude_unset=True))
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", "settings", *error["loc"])} for error in exc.errors()]
            ) from None
    return settings.model_dump(mode="json")


async def create_pipeline(session: AsyncSession, data: PipelineCreate) -> Pipeline:
    if await session.get(Merchant, data.merchant_id) is None:
        raise NotFound(f"merchant {data.merchant_id} not found.")
    await _connection(session, data.source_connection_id, data.merchant_id, "marketplace", "source")
    target = await _connection(
        session, data.target_connection_id, data.merchant_id, "erp", "target"
    )
    pipeline = Pipeline(
        merchant_id=data.merchant_id,
        name=data.name,
        source_connection_id=data.source_connection_id,
        target_connection_id=data.target_connection_id,
        settings=target_settings(target.connector, data.settings),
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


async def update_pipeline(
    session: AsyncSession, pipeline: Pipeline, name: str | None, new: BaseModel | None
) -> dict[str, Any]:
    """Rename and/or replace the settings; what changed, as {field: {from, to}}."""
    settings = None
    if new is not None:
        target = await session.get(Connection, pipeline.target_connection_id)
        if target is None:
            raise NotFound(f"target connection {pipeline.target_connection_id} not found.")
        settings = target_settings(target.connector, new)
    changed: dict[str, Any] = {}
    if name is not None and name != pipeline.name:
        changed["name"] = {"from": pipeline.name, "to": name}
        pipeline.name = name
    if settings is not None and settings != pipeline.settings:
        changed["settings"] = {"from": pipeline.settings, "to": settings}
        pipeline.settings = settings
    if changed:
        await session.flush()
    return changed


async def pause_pipeline(session: AsyncSession, pipeline: Pipeline) -> bool:
    """Pause (its orders keep their place and wait); False when it already was."""
    await session.refresh(pipeline, with_for_update=True)
    if pipeline.status == PipelineStatus.stopped:
        raise Conflict(
            f"pipeline {pipeline.id} is stopped (a connection was unlinked).",
            code="invalid_state",
        )
    if pipeline.status == PipelineStatus.paused:
        return False
    pipeline.status = PipelineStatus.paused
    await session.flush()
    return True


async def resume_pipeline(session: AsyncSession, pipeline: Pipeline) -> int | None:
    """Resume a paused or stopped pipeline and start the orders it held: how many (None
    when it was active already). Both its connections must be usable."""
    await session.refresh(pipeline, with_for_update=True)
    if pipeline.status == PipelineStatus.active:
        return None
    for conn_id in (pipeline.source_connection_id, pipeline.target_connection_id):
        conn = await session.get(Connection, conn_id)
        if conn is None or conn.status in (
            ConnectionStatus.disconnected,
            ConnectionStatus.needs_reauth,
        ):
            raise Conflict(
                f"connection {conn_id} must be linked again before the pipeline resumes.",
                code="connection_unusable",
            )
    pipeline.status = PipelineStatus.active
    await session.flush()
    return await resume_waiting_orders(session, [pipeline.id])


async def delete_mapping(session: AsyncSession, pipeline: Pipeline, mapping_id: int) -> Mapping:
    """Delete one of the pipeline's mappings (404 for any other id); the deleted row."""
    mapping = await session.get(Mapping, mapping_id)
    if mapping is None or mapping.pipeline_id != pipeline.id:
        raise NotFound(f"mapping {mapping_id} not found.")
    await session.execute(delete(Mapping).where(Mapping.id == mapping.id))
    return mapping
