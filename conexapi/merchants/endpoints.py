"""Merchants: list, create, inspect, rename."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status

from conexapi.auth.deps import Admin, Viewer
from conexapi.deps import SessionDep
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.api.openapi import COMMON_ERRORS
from conexapi.kit.api.pagination import Page, paginate, sort_key
from conexapi.kit.api.params import CursorQuery, IdPath, LimitQuery
from conexapi.merchants import service
from conexapi.merchants.schemas import MerchantCreate, MerchantOut, MerchantUpdate
from conexapi.models import Merchant

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)


@router.get("/merchants", response_model=Page[MerchantOut], tags=["merchants"])
async def list_merchants(
    principal: Viewer,
    session: SessionDep,
    slug: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["id", "-id", "created_at", "-created_at"] = "id",
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[MerchantOut]:
    stmt = service.merchants(principal, slug=slug)
    sorting = sort_key(sort, service.MERCHANT_SORTS)
    rows, nxt = await paginate(session, stmt, Merchant.id, sorting, cursor, limit)
    return Page[MerchantOut](items=[MerchantOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.post(
    "/merchants",
    status_code=status.HTTP_201_CREATED,
    response_model=MerchantOut,
    tags=["merchants"],
    summary="Create a merchant (admins)",
)
async def create_merchant(
    data: MerchantCreate, principal: Admin, session: SessionDep, request: Request
) -> Merchant:
    merchant = await service.create_merchant(session, data.name, data.slug)
    record(
        session,
        principal,
        Origin.of(request),
        "merchant.create",
        "merchant",
        merchant.id,
        merchant_id=merchant.id,
        details={"slug": data.slug},
    )
    return merchant


@router.get("/merchants/{merchant_id}", response_model=MerchantOut, tags=["merchants"])
async def get_merchant(merchant_id: IdPath, principal: Viewer, session: SessionDep) -> Merchant:
    return await service.visible_merchant(session, principal, merchant_id)


@router.patch(
    "/merchants/{merchant_id}",
    response_model=MerchantOut,
    tags=["merchants"],
    summary="Rename a merchant (admins)",
)
async def update_merchant(
    merchant_id: IdPath,
    data: MerchantUpdate,
    principal: Admin,
    session: SessionDep,
    request: Request,
) -> Merchant:
    merchant = await service.visible_merchant(session, principal, merchant_id)
    before = merchant.name
    merchant.name = data.name
    await session.flush()
    record(
        session,
        principal,
        Origin.of(request),
        "merchant.update",
        "merchant",
        merchant.id,
        merchant_id=merchant.id,
        details={"name": {"from": before, "to": data.name}},
    )
    return merchant
