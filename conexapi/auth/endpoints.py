"""Log in (OAuth2 password flow), refresh, log out; users and API keys (admins)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conexapi.auth import repository, service
from conexapi.auth.deps import Admin, CurrentPrincipal
from conexapi.auth.passwords import MIN_PASSWORD_LENGTH
from conexapi.auth.principal import Principal
from conexapi.auth.ratelimit import client_address
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.api.openapi import COMMON_ERRORS, error_responses
from conexapi.kit.api.pagination import MAX_LIMIT, Page, UtcDatetime, paginate, sort_key
from conexapi.kit.api.params import MAX_ID, IdPath
from conexapi.kit.errors import AppError, BadRequest, Unauthorized, ValidationFailed
from conexapi.kit.jsondepth import MAX_DEPTH, nested_deeper_than
from conexapi.models import ApiKey, Role, User

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)

MerchantIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Field(max_length=1000)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme name)
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")
    refresh_expires_at: datetime


class PrincipalOut(BaseModel):
    kind: Literal["user", "api_key"]
    id: int
    label: str
    role: Role
    merchant_ids: list[int] | None = Field(description="null: every merchant (admins).")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    email: str
    role: Role
    is_active: bool
    merchant_ids: list[int]
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(
        min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$", examples=["ops@tienda.co"]
    )
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1000)
    role: Role
    merchant_ids: MerchantIds = Field(default_factory=list)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    merchant_ids: MerchantIds | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=1000)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The visible start of the key; names it in logs.")
    role: Role
    merchant_ids: list[int]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown this once; store it safely.")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120, examples=["erp-sync-bot"])
    role: Role
    merchant_ids: MerchantIds = Field(default_factory=list)
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the key stops working: in the future, at most "
        f"{service.API_KEY_MAX_LIFETIME.days} days ahead. Leave out for a key that does "
        "not expire.",
    )


class TokenRequest(BaseModel):
    """A login (``grant_type=password``) or a refresh, as OAuth2 form fields or JSON.

    Other fields (an OAuth2 client's ``scope``, ``client_id``) are ignored.
    """

    grant_type: Literal["password", "refresh_token"] = "password"
    username: str | None = Field(default=None, max_length=254)
    password: str | None = Field(default=None, max_length=1000)
    refresh_token: str | None = Field(default=None, max_length=200)


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_TOKEN_SCHEMA = TokenRequest.model_json_schema()


async def token_request(request: Request) -> TokenRequest:
    """The body of ``POST /auth/token``: the OAuth2 form (what OAuth2 clients and the docs
    page send) or the same fields as a JSON object (what most API clients send).

    FastAPI takes one body type per route, so the body is read here and documented by
    hand (the route's ``openapi_extra``); errors are the ones FastAPI would answer.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await request.body()
    fields: object
    if media_type == "application/json" or media_type.endswith("+json"):
        if nested_deeper_than(body):
            raise BadRequest(
                f"The JSON body nests more than {MAX_DEPTH} levels deep; send "
                '{"username": ..., "password": ...}.',
                code="body_too_deep",
                details={"max_depth": MAX_DEPTH},
            )
        try:
            # UTF-8, as RFC 8259 has it (the depth was counted on UTF-8 text).
            fields = json.loads(body.decode("utf-8"))
        except ValueError:
            raise BadRequest(
                'The request body is not valid JSON; send {"username": ..., "password": ...}.',
                code="malformed_json",
            ) from None
    elif media_type in _FORMS or not body:
        fields = dict(await request.form())
    else:
        raise AppError(
            "Send the fields as a form (application/x-www-form-urlencoded) or as a JSON "
            "object (application/json).",
            code="unsupported_media_type",
            status_code=415,
            details={"content_type": media_type[:100]},
        )
    try:
        return TokenRequest.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def _token_out(issued: service.IssuedTokens, ttl: int) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        expires_in=ttl,
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
    )


# --- tokens ---------------------------------------------------------------------------------


@router.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["auth"],
    summary="Log in (grant_type=password) or refresh (grant_type=refresh_token)",
    description="Takes the OAuth2 form fields or the same fields as a JSON object.",
    responses=error_responses(400, 401, 415, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": _TOKEN_SCHEMA}
                for media_type in ("application/x-www-form-urlencoded", "application/json")
            },
        }
    },
)
async def token(
    request: Request,
    session: SessionDep,
    resources: ResourcesDep,
    data: Annotated[TokenRequest, Depends(token_request)],
) -> TokenOut:
    grant_type, username, password = data.grant_type, data.username, data.password
    refresh_token = data.refresh_token
    settings = resources.settings
    limiter = resources.auth_limiter
    address = client_address(request)
    refused = Unauthorized("The credentials are not valid.", code="invalid_credentials")
    if grant_type == "refresh_token":
        if not refresh_token:
            raise ValidationFailed("Send refresh_token.", details={"field": "refresh_token"})
        try:
            issued = await service.refresh(session, settings, refresh_token)
        except service.AuthenticationFailed:
            # The reuse check may have revoked a login: that must stick.
            await session.commit()
            await limiter.credential_failed(address)
            raise refused from None
        return _token_out(issued, settings.access_token_ttl_seconds)
    if not username or not password:
        raise ValidationFailed(
            "Send username and password.", details={"fields": ["username", "password"]}
        )
    account = service.normalize_email(username)
    await limiter.begin_login(account, address)
    try:
        issued = await service.login(
            session,
            settings,
            username,
            password,
            ip=address,
            user_agent=request.headers.get("user-agent"),
        )
    except service.AuthenticationFailed:
        log.info("login_refused")
        await limiter.login_failed(account)
        raise refused from None
    await limiter.login_succeeded(account, address)
    user = issued.user
    actor = Principal("user", user.id, user.email, Role(user.role), None)
    record(session, actor, Origin.of(request), "auth.login", "user", user.id)
    return _token_out(issued, settings.access_token_ttl_seconds)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["auth"],
    summary="End this login: its access and refresh tokens stop working",
)
async def logout(principal: CurrentPrincipal, session: SessionDep, request: Request) -> None:
    if principal.session_id is None:
        raise ValidationFailed("API keys have no login to end; revoke the key instead.")
    await service.logout(session, principal.session_id)
    record(session, principal, Origin.of(request), "auth.logout", "user", principal.id)


@router.get("/auth/me", response_model=PrincipalOut, tags=["auth"])
async def me(principal: CurrentPrincipal) -> PrincipalOut:
    return PrincipalOut(
        kind="user" if principal.kind == "user" else "api_key",
        id=principal.id,
        label=principal.label,
        role=principal.role,
        merchant_ids=sorted(principal.merchant_ids) if principal.merchant_ids is not None else None,
    )


# --- users ----------------------------------------------------------------------------------


async def _user_out(session: SessionDep, user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        role=Role(user.role),
        is_active=user.is_active,
        merchant_ids=await service.user_merchants(session, user.id),
        last_login_at=user.last_login_at,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


@router.get("/users", response_model=Page[UserOut], tags=["users"])
async def list_users(
    principal: Admin,
    session: SessionDep,
    role: Role | None = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    merchant_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Page[UserOut]:
    normalized = service.normalize_email(email) if email is not None else None
    stmt = repository.users(role=role, email=normalized, merchant_id=merchant_id)
    rows, nxt = await paginate(
        session, stmt, User.id, sort_key("id", {"id": User.id}), cursor, limit
    )
    return Page[UserOut](items=[await _user_out(session, u) for u in rows], next_cursor=nxt)


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut, tags=["users"])
async def create_user(
    data: UserCreate, principal: Admin, session: SessionDep, request: Request
) -> UserOut:
    user = await service.create_user(
        session, data.email, data.password, data.role, data.merchant_ids
    )
    record(
        session,
        principal,
        Origin.of(request),
        "user.create",
        "user",
        user.id,
        details={"email": user.email, "role": data.role.value, "merchant_ids": data.merchant_ids},
    )
    return await _user_out(session, user)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
async def get_user(user_id: IdPath, principal: Admin, session: SessionDep) -> UserOut:
    return await _user_out(session, await service.get_user(session, user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    tags=["users"],
    summary="Change role, merchants, password or disable; the user's logins end",
)
async def update_user(
    user_id: IdPath, data: UserUpdate, principal: Admin, session: SessionDep, request: Request
) -> UserOut:
    user = await service.get_user(session, user_id)
    await service.update_user(
        session,
        user,
        role=data.role,
        merchant_ids=data.merchant_ids,
        is_active=data.is_active,
        password=data.password,
    )
    changes = data.model_dump(exclude_unset=True, mode="json")
    if changes.pop("password", None) is not None:
        changes["password_changed"] = True
    record(session, principal, Origin.of(request), "user.update", "user", user.id, details=changes)
    return await _user_out(session, user)


# --- API keys -------------------------------------------------------------------------------


async def _key_out(session: SessionDep, row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=Role(row.role),
        merchant_ids=await service.api_key_merchants(session, row.id),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.get("/api-keys", response_model=Page[ApiKeyOut], tags=["API keys"])
async def list_api_keys(
    principal: Admin,
    session: SessionDep,
    revoked: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> Page[ApiKeyOut]:
    stmt = repository.api_keys(revoked=revoked)
    rows, nxt = await paginate(
        session, stmt, ApiKey.id, sort_key("id", {"id": ApiKey.id}), cursor, limit
    )
    return Page[ApiKeyOut](items=[await _key_out(session, r) for r in rows], next_cursor=nxt)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    tags=["API keys"],
    summary="Create an API key; the key is in this answer only",
)
async def create_api_key(
    data: ApiKeyCreate, principal: Admin, session: SessionDep, request: Request
) -> ApiKeyCreated:
    row, key = await service.create_api_key(
        session,
        data.name,
        data.role,
        data.merchant_ids,
        created_by=principal.id if principal.kind == "user" else None,
        expires_at=data.expires_at,
    )
    record(
        session,
        principal,
        Origin.of(request),
        "api_key.create",
        "api_key",
        row.id,
        details={"prefix": row.prefix, "role": data.role.value, "merchant_ids": data.merchant_ids},
    )
    out = await _key_out(session, row)
    return ApiKeyCreated(**out.model_dump(), key=key)


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, tags=["API keys"])
async def get_api_key(key_id: IdPath, principal: Admin, session: SessionDep) -> ApiKeyOut:
    return await _key_out(session, await repository.api_key(session, key_id))


@router.delete(
    "/api-keys/{key_id}", response_model=ApiKeyOut, tags=["API keys"], summary="Revoke a key"
)
async def revoke_api_key(
    key_id: IdPath, principal: Admin, session: SessionDep, request: Request
) -> ApiKeyOut:
    row = await service.revoke_api_key(session, key_id)
    record(
        session,
        principal,
        Origin.of(request),
        "api_key.revoke",
        "api_key",
        row.id,
        details={"prefix": row.prefix},
    )
    return await _key_out(session, row)
