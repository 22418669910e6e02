"""Pipelines, their settings and their mappings (including a CSV import)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, status
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import delete, select

from conexapi.auth.deps import Operator, Viewer
from conexapi.deps import SessionDep
from conexapi.kit.errors import Conflict, NotFound, ValidationFailed
from conexapi.models import (
    Connection,
    ConnectionStatus,
    Mapping,
    MappingKind,
    Pipeline,
    PipelineStatus,
)
from conexapi.ops import service
from conexapi.ops.audit import Origin, record
from conexapi.ops.openapi import COMMON_ERRORS
from conexapi.ops.pagination import MAX_LIMIT, Page, paginate, sort_key
from conexapi.ops.schemas import MAX_ID, IdPath
from conexapi.ops.scoping import load_pipeline, merchant_clause
from conexapi.pipelines import service as pipelines
from conexapi.pipelines.schemas import (
    MappingIn,
    MappingOut,
    PipelineCreate,
    PipelineOut,
    PipelineSettings,
)

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses=COMMON_ERRORS)

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]
MAX_MAPPINGS = 5000


class PipelineUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: PipelineSettings | None = None


class MappingImport(BaseModel):
    created: int
    updated: int
    unchanged: int
    dry_run: bool


def _audit(
    request: Request, principal: Any, session: SessionDep, action: str, p: Pipeline, **details: Any
) -> None:
    record(
        session,
        principal,
        Origin.of(request),
        action,
        "pipeline",
        p.id,
        merchant_id=p.merchant_id,
        details=details,
    )


@router.get("/pipelines", response_model=Page[PipelineOut])
async def list_pipelines(
    principal: Viewer,
    session: SessionDep,
    merchant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status_: Annotated[list[PipelineStatus] | None, Query(alias="status")] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[PipelineOut]:
    stmt = select(Pipeline).where(merchant_clause(principal, Pipeline.merchant_id))
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    if status_:
        stmt = stmt.where(Pipeline.status.in_([s.value for s in status_]))
    sorts = {"id": Pipeline.id, "created_at": Pipeline.created_at}
    rows, nxt = await paginate(session, stmt, Pipeline.id, sort_key(sort, sorts), cursor, limit)
    return Page[PipelineOut](items=[PipelineOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/pipelines", status_code=status.HTTP_201_CREATED, response_model=PipelineOut)
async def create_pipeline(
    data: PipelineCreate, principal: Operator, session: SessionDep, request: Request
) -> PipelineOut:
    if not 1 <= data.merchant_id <= MAX_ID or not principal.sees(data.merchant_id):
        raise NotFound(f"merchant {data.merchant_id} not found.")
    for field in ("source_connection_id", "target_connection_id"):
        if not 1 <= getattr(data, field) <= MAX_ID:
            raise NotFound(f"connection {getattr(data, field)} not found.")
    pipeline = await pipelines.create_pipeline(session, data)
    _audit(request, principal, session, "pipeline.create", pipeline, name=data.name)
    return PipelineOut.model_validate(pipeline)


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut)
async def get_pipeline(pipeline_id: IdPath, principal: Viewer, session: SessionDep) -> PipelineOut:
    return PipelineOut.model_validate(await load_pipeline(session, principal, pipeline_id))


@router.patch(
    "/pipelines/{pipeline_id}",
    response_model=PipelineOut,
    summary="Rename a pipeline or replace its settings",
)
async def update_pipeline(
    pipeline_id: IdPath,
    data: PipelineUpdate,
    principal: Operator,
    session: SessionDep,
    request: Request,
) -> PipelineOut:
    pipeline = await load_pipeline(session, principal, pipeline_id)
    changed: dict[str, Any] = {}
    if data.name is not None and data.name != pipeline.name:
        changed["name"] = {"from": pipeline.name, "to": data.name}
        pipeline.name = data.name
    if data.settings is not None:
        new = data.settings.model_dump(mode="json")
        if new != pipeline.settings:
            changed["settings"] = {"from": pipeline.settings, "to": new}
            pipeline.settings = new
    if changed:
        await session.flush()
        _audit(request, principal, session, "pipeline.update", pipeline, **changed)
    return PipelineOut.model_validate(pipeline)


@router.post(
    "/pipelines/{pipeline_id}/pause",
    response_model=PipelineOut,
    summary="Pause: its orders keep their place and wait",
)
async def pause_pipeline(
    pipeline_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> PipelineOut:
    pipeline = await load_pipeline(session, principal, pipeline_id)
    await session.refresh(pipeline, with_for_update=True)
    if pipeline.status == PipelineStatus.stopped:
        raise Conflict(
            f"pipeline {pipeline.id} is stopped (a connection was unlinked).",
            code="invalid_state",
        )
    if pipeline.status != PipelineStatus.paused:
        pipeline.status = PipelineStatus.paused
        await session.flush()
        _audit(request, principal, session, "pipeline.pause", pipeline)
    return PipelineOut.model_validate(pipeline)


@router.post(
    "/pipelines/{pipeline_id}/resume",
    response_model=PipelineOut,
    summary="Resume a paused or stopped pipeline; the orders it held start again",
)
async def resume_pipeline(
    pipeline_id: IdPath, principal: Operator, session: SessionDep, request: Request
) -> PipelineOut:
    pipeline = await load_pipeline(session, principal, pipeline_id)
    await session.refresh(pipeline, with_for_update=True)
    if pipeline.status != PipelineStatus.active:
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
        started = await service.resume_waiting_orders(session, [pipeline.id])
        _audit(request, principal, session, "pipeline.resume", pipeline, orders_started=started)
    return PipelineOut.model_validate(pipeline)


# --- mappings -------------------------------------------------------------------------------


@router.get("/pipelines/{pipeline_id}/mappings", response_model=Page[MappingOut])
async def list_mappings(
    pipeline_id: IdPath,
    principal: Viewer,
    session: SessionDep,
    kind: MappingKind | None = None,
    source_value: Annotated[str | None, Query(max_length=120)] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[MappingOut]:
    await load_pipeline(session, principal, pipeline_id)
    stmt = select(Mapping).where(Mapping.pipeline_id == pipeline_id)
    if kind is not None:
        stmt = stmt.where(Mapping.kind == kind)
    if source_value is not None:
        stmt = stmt.where(Mapping.source_value == source_value)
    rows, nxt = await paginate(
        session, stmt, Mapping.id, sort_key("id", {"id": Mapping.id}), cursor, limit
    )
    return Page[MappingOut](items=[MappingOut.model_validate(r) for r in rows], next_cursor=nxt)


def _duplicates(items: list[MappingIn]) -> list[int]:
    seen: set[tuple[str, str]] = set()
    dupes = []
    for n, item in enumerate(items):
        key = (item.kind.value, item.source_value)
        if key in seen:
            dupes.append(n)
        seen.add(key)
    return dupes


@router.put(
    "/pipelines/{pipeline_id}/mappings",
    response_model=list[MappingOut],
    summary="Create or update mappings; orders waiting in needs_mapping resume by themselves",
)
async def put_mappings(
    pipeline_id: IdPath,
    items: Annotated[list[MappingIn], Body(max_length=MAX_MAPPINGS)],
    principal: Operator,
    session: SessionDep,
    request: Request,
) -> list[MappingOut]:
    pipeline = await load_pipeline(session, principal, pipeline_id)
    dupes = _duplicates(items)
    if dupes:
        raise ValidationFailed(
            "The same kind and source value appear more than once.",
            code="duplicate_mapping",
            details={"indexes": dupes},
        )
    rows = await pipelines.put_mappings(session, pipeline, items)
    _audit(request, principal, session, "mappings.put", pipeline, count=len(items))
    return [MappingOut.model_validate(r) for r in rows]


@router.delete(
    "/pipelines/{pipeline_id}/mappings/{mapping_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_mapping(
    pipeline_id: IdPath,
    mapping_id: IdPath,
    principal: Operator,
    session: SessionDep,
    request: Request,
) -> None:
    pipeline = await load_pipeline(session, principal, pipeline_id)
    mapping = await session.get(Mapping, mapping_id)
    if mapping is None or mapping.pipeline_id != pipeline.id:
        raise NotFound(f"mapping {mapping_id} not found.")
    await session.execute(delete(Mapping).where(Mapping.id == mapping.id))
    _audit(
        request,
        principal,
        session,
        "mapping.delete",
        pipeline,
        mapping={"kind": mapping.kind, "source_value": mapping.source_value},
    )


_CSV_COLUMNS = ("kind", "source_value", "target_value")


def parse_mappings_csv(raw: bytes) -> tuple[list[MappingIn], list[dict[str, Any]]]:
    """The rows, and one error entry per bad row (``line`` is the file's line number)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text.", code="csv_invalid") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if sorted(header) != sorted(_CSV_COLUMNS):
        raise ValidationFailed(
            "The first line must name the columns kind,source_value,target_value.",
            code="csv_invalid",
            details={"header": header[:10]},
        )
    reader.fieldnames = header
    items: list[MappingIn] = []
    errors: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                errors.append({"line": line, "errors": ["wrong number of columns"]})
                continue
            try:
                item = MappingIn(**{k: (row[k] or "").strip() for k in _CSV_COLUMNS})
            except ValidationError as exc:
                errors.append(
                    {
                        "line": line,
                        "errors": [
                            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in exc.errors()
                        ],
                    }
                )
                continue
            key = (item.kind.value, item.source_value)
            if key in seen:
                errors.append({"line": line, "errors": [f"repeats line {seen[key]}"]})
                continue
            seen[key] = line
            items.append(item)
            if len(items) > MAX_MAPPINGS:
                raise ValidationFailed(
                    f"At most {MAX_MAPPINGS} mappings per file.", code="csv_invalid"
                )
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not valid CSV: {exc}.", code="csv_invalid") from None
    return items, errors


@router.post(
    "/pipelines/{pipeline_id}/mappings/import",
    response_model=MappingImport,
    summary="Import mappings from CSV (kind,source_value,target_value); all rows or none",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "kind,source_value,target_value\nsku,CAM-ALG-M,CAM-ALG-M\n",
                }
            },
        }
    },
)
async def import_mappings(
    pipeline_id: IdPath,
    principal: Operator,
    session: SessionDep,
    request: Request,
    dry_run: bool = False,
) -> MappingImport:
    """Every bad row is reported (422 ``csv_invalid`` with ``details.rows``); nothing is
    saved unless every row is good."""
    pipeline = await load_pipeline(session, principal, pipeline_id)
    items, errors = parse_mappings_csv(await request.body())
    if errors:
        raise ValidationFailed(
            f"{len(errors)} row(s) are not valid; nothing was imported.",
            code="csv_invalid",
            details={"rows": errors[:500], "bad_rows": len(errors)},
        )
    existing = {
        (m.kind, m.source_value): m.target_value
        for m in await session.scalars(select(Mapping).where(Mapping.pipeline_id == pipeline.id))
    }
    created = sum(1 for i in items if (i.kind.value, i.source_value) not in existing)
    unchanged = sum(
        1 for i in items if existing.get((i.kind.value, i.source_value)) == i.target_value
    )
    result = MappingImport(
        created=created,
        updated=len(items) - created - unchanged,
        unchanged=unchanged,
        dry_run=dry_run,
    )
    if not dry_run and items:
        changed = [
            i for i in items if existing.get((i.kind.value, i.source_value)) != i.target_value
        ]
        await pipelines.put_mappings(session, pipeline, changed)
        _audit(
            request,
            principal,
            session,
            "mappings.import",
            pipeline,
            created=result.created,
            updated=result.updated,
        )
    return result
