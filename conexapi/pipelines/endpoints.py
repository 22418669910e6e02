"""Pipelines, their settings and their mappings (including a CSV import)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, status
from pydantic import BaseModel, Field

from conexapi.auth.deps import Operator, Viewer
from conexapi.deps import SessionDep
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.api.openapi import COMMON_ERRORS
from conexapi.kit.api.pagination import Page, paginate, sort_key
from conexapi.kit.api.params import MAX_ID, CursorQuery, IdPath, IdQuery, LimitQuery
from conexapi.kit.api.scoping import load_pipeline
from conexapi.kit.errors import NotFound, ValidationFailed
from conexapi.models import Mapping, MappingKind, Pipeline, PipelineStatus
from conexapi.pipelines import repository
from conexapi.pipelines import service as pipelines
from conexapi.pipelines.csv_import import MAX_MAPPINGS, parse_mappings_csv
from conexapi.pipelines.schemas import (
    MappingIn,
    MappingOut,
    PipelineCreate,
    PipelineOut,
    PipelineSettings,
)

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses=COMMON_ERRORS)


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
    merchant_id: IdQuery = None,
    status_: Annotated[list[PipelineStatus] | None, Query(alias="status")] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[PipelineOut]:
    stmt = repository.pipelines(principal, merchant_id=merchant_id, statuses=status_)
    sorting = sort_key(sort, repository.PIPELINE_SORTS)
    rows, nxt = await paginate(session, stmt, Pipeline.id, sorting, cursor, limit)
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
    changed = await pipelines.update_pipeline(session, pipeline, data.name, data.settings)
    if changed:
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
    if await pipelines.pause_pipeline(session, pipeline):
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
    started = await pipelines.resume_pipeline(session, pipeline)
    if started is not None:
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
    stmt = repository.mappings(pipeline_id, kind=kind, source_value=source_value)
    sorting = sort_key("id", {"id": Mapping.id})
    rows, nxt = await paginate(session, stmt, Mapping.id, sorting, cursor, limit)
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
    mapping = await pipelines.delete_mapping(session, pipeline, mapping_id)
    _audit(
        request,
        principal,
        session,
        "mapping.delete",
        pipeline,
        mapping={"kind": mapping.kind, "source_value": mapping.source_value},
    )


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
    existing = await repository.mapping_targets(session, pipeline.id)
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
