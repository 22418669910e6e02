"""Merchants, pipelines and mappings: enough to set up a pipeline through the API."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from conexapi.deps import SessionDep
from conexapi.kit.errors import Conflict, NotFound
from conexapi.models import Merchant, Pipeline
from conexapi.pipelines import service
from conexapi.pipelines.schemas import MappingIn, MappingOut, PipelineCreate, PipelineOut

router = APIRouter(prefix="/api/v1", tags=["pipelines"])


class MerchantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")


class MerchantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    slug: str
    created_at: datetime


class PipelinePage(BaseModel):
    items: list[PipelineOut]
    next_cursor: int | None = None


@router.post("/merchants", status_code=status.HTTP_201_CREATED, response_model=MerchantOut)
async def create_merchant(data: MerchantCreate, session: SessionDep) -> Merchant:
    merchant = Merchant(name=data.name, slug=data.slug)
    try:
        async with session.begin_nested():
            session.add(merchant)
    except IntegrityError:
        raise Conflict(f"a merchant with slug {data.slug!r} exists.") from None
    return merchant


@router.get("/merchants/{merchant_id}", response_model=MerchantOut)
async def get_merchant(merchant_id: int, session: SessionDep) -> Merchant:
    merchant = await session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound(f"merchant {merchant_id} not found.")
    return merchant


@router.post("/pipelines", status_code=status.HTTP_201_CREATED, response_model=PipelineOut)
async def create_pipeline(data: PipelineCreate, session: SessionDep) -> Pipeline:
    return await service.create_pipeline(session, data)


@router.get("/pipelines", response_model=PipelinePage)
async def list_pipelines(
    session: SessionDep, merchant_id: int | None = None, cursor: int = 0, limit: int = 50
) -> PipelinePage:
    stmt = select(Pipeline).where(Pipeline.id > cursor).order_by(Pipeline.id).limit(limit + 1)
    if merchant_id is not None:
        stmt = stmt.where(Pipeline.merchant_id == merchant_id)
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return PipelinePage(
        items=[PipelineOut.model_validate(r) for r in rows],
        next_cursor=rows[-1].id if more else None,
    )


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut)
async def get_pipeline(pipeline_id: int, session: SessionDep) -> Pipeline:
    return await service.get_pipeline(session, pipeline_id)


@router.put("/pipelines/{pipeline_id}/mappings", response_model=list[MappingOut])
async def put_mappings(
    pipeline_id: int, items: list[MappingIn], session: SessionDep
) -> list[MappingOut]:
    """Create or update mappings; orders waiting in ``needs_mapping`` resume by themselves."""
    pipeline = await service.get_pipeline(session, pipeline_id)
    rows = await service.put_mappings(session, pipeline, items)
    return [MappingOut.model_validate(r) for r in rows]


@router.get("/pipelines/{pipeline_id}/mappings", response_model=list[MappingOut])
async def list_mappings(pipeline_id: int, session: SessionDep) -> list[MappingOut]:
    await service.get_pipeline(session, pipeline_id)
    return [MappingOut.model_validate(r) for r in await service.list_mappings(session, pipeline_id)]
