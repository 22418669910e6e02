"""Request dependencies: the caller (:data:`CurrentPrincipal`) and what it may do.

Credentials: ``Authorization: Bearer <access token or API key>`` or ``X-API-Key: <key>``.
The check runs in a short transaction of its own, so an endpoint that calls upstream
before touching the database does not hold a database lock meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from conexapi.auth.principal import Principal
from conexapi.auth.ratelimit import client_address
from conexapi.auth.service import AuthenticationFailed, authenticate
from conexapi.db import unit_of_work
from conexapi.deps import ResourcesDep
from conexapi.kit.errors import Forbidden, NotFound, Unauthorized
from conexapi.models import Merchant, Role

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (a path, not a secret)
MAX_ID = 2**63 - 1

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="OAuth2Password",
    description="A user's access token (log in at the token URL), or an API key.",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="ApiKey", description="An API key."
)


async def get_principal(
    request: Request,
    resources: ResourcesDep,
    bearer: Annotated[str | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    credential = (api_key or bearer or "").strip()
    if not credential:
        raise Unauthorized(
            "Send an access token or an API key: Authorization: Bearer <token>.",
            code="unauthorized",
        )
    try:
        async with unit_of_work(resources.sessionmaker) as session:
            principal = await authenticate(session, resources.settings, credential)
    except AuthenticationFailed:
        # Checked first and counted only when refused: a valid token or key is never
        # turned away because of what else came from its address.
        limiter = resources.auth_limiter
        await limiter.credential_failed(client_address(request))
        raise Unauthorized(
            "The access token or API key is not valid (expired, revoked or malformed).",
            code="invalid_credentials",
        ) from None
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.at_least(role):
            raise Forbidden(f"This needs the {role.value} role or higher.", code="forbidden")
        return principal

    return check


MerchantHeader = Annotated[
    int | None,
    Header(
        ge=1,
        le=MAX_ID,
        description="Act for this merchant only: lists show only its objects and another "
        "merchant's are not found. Without it, everything the caller may see.",
    ),
]


def acting(role: Role) -> Callable[..., Awaitable[Principal]]:
    """``require(role)``, then narrowed to the merchant named in ``X-Merchant-Id``.

    The narrowed principal sees that merchant alone, so every scoping rule (lists' filters,
    loading one object, bulk operations) honours the header without knowing about it. A
    merchant the caller may not see, or that does not exist, is a 404, as in
    ``MerchantScope``.
    """
    allowed = require(role)

    # A default, not ``Annotated``: the annotations are strings (``from __future__``) that
    # FastAPI resolves in the module's namespace, where ``allowed`` does not exist.
    async def narrow(
        resources: ResourcesDep,
        principal: Principal = Depends(allowed),
        x_merchant_id: MerchantHeader = None,
    ) -> Principal:
        if x_merchant_id is None:
            return principal
        if not principal.sees(x_merchant_id):
            raise NotFound(f"merchant {x_merchant_id} not found.")
        async with resources.sessionmaker() as check:
            if await check.get(Merchant, x_merchant_id) is None:
                raise NotFound(f"merchant {x_merchant_id} not found.")
        return principal.acting_for_merchant(x_merchant_id)

    return narrow


#: Any authenticated caller (reads), acting for the merchant in ``X-Merchant-Id`` if named.
Viewer = Annotated[Principal, Depends(acting(Role.viewer))]
#: Operators and admins (retry, pause, edit), acting for the merchant named, if one is.
Operator = Annotated[Principal, Depends(acting(Role.operator))]
#: Admins only (users, API keys, merchants): the installation's, not a merchant's.
Admin = Annotated[Principal, Depends(require(Role.admin))]
