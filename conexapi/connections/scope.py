"""Who is asking: the merchant (and caller) a request acts for.

:data:`MerchantScope` authenticates the caller (access token or API key, see
``conexapi/auth/deps.py``) and picks the merchant the request acts for: the one named by
the ``X-Merchant-Id`` header, or the caller's only merchant when it has one. A merchant
the caller may not see is answered like one that does not exist (404). Reads need any
role; other methods need an operator or an admin, and are written to the audit log with
the request's own transaction (kept only if the change is).

The checks run in a short transaction of their own, so an endpoint can still call
upstream before its own transaction opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.routing import APIRoute

from conexapi.auth.deps import CurrentPrincipal
from conexapi.auth.principal import Principal
from conexapi.deps import ResourcesDep, SessionDep
from conexapi.kit.api.audit import Origin, record
from conexapi.kit.errors import Forbidden, NotFound, ValidationFailed
from conexapi.models import Merchant, Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class Scope:
    merchant_id: int
    #: ``user:12`` or ``api_key:3``
    user_id: str | None = None
    principal: Principal | None = None


_INTEGER = re.compile(r"^-?\d+$")


def _check_numbers(request: Request) -> None:
    """No id or number in the path or query may exceed what the database stores.

    Endpoints declare plain ``int`` parameters; a larger value would reach the database
    driver and fail there (500). Refused here, once, for every endpoint of this scope.
    """
    values = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in values:
        text = str(value).removesuffix(".csv")
        if _INTEGER.match(text) and not -MAX_ID - 1 <= int(text) <= MAX_ID:
            raise ValidationFailed(
                f"{name} is out of range.", details={"param": name, "max": MAX_ID}
            )


async def merchant_scope(
    request: Request,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    session: SessionDep,
    x_merchant_id: Annotated[
        int | None,
        Header(
            ge=1,
            le=MAX_ID,
            description="The merchant the request acts for; optional when the caller has "
            "exactly one.",
        ),
    ] = None,
) -> Scope:
    _check_numbers(request)
    writes = request.method not in SAFE_METHODS
    if writes and not principal.at_least(Role.operator):
        raise Forbidden("This needs the operator role or higher.", code="forbidden")
    merchant_id = x_merchant_id
    if merchant_id is None:
        if principal.merchant_ids is None or len(principal.merchant_ids) != 1:
            raise ValidationFailed(
                "Name the merchant in the X-Merchant-Id header.",
                code="merchant_required",
                details={"header": "X-Merchant-Id"},
            )
        (merchant_id,) = principal.merchant_ids
    if not principal.sees(merchant_id):
        raise NotFound(f"merchant {merchant_id} not found.")
    async with resources.sessionmaker() as check:
        if await check.get(Merchant, merchant_id) is None:
            raise NotFound(f"merchant {merchant_id} not found.")
    if writes:
        _audit(request, session, principal, merchant_id)
    return Scope(merchant_id, principal.ref, principal)


def _audit(request: Request, session: SessionDep, principal: Principal, merchant_id: int) -> None:
    route = request.scope.get("route")
    record(
        session,
        principal,
        Origin.of(request),
        route.name if isinstance(route, APIRoute) else "request",
        "request",
        request.url.path[:64],
        merchant_id=merchant_id,
        details={"method": request.method, "path_params": dict(request.path_params)},
    )


MerchantScope = Annotated[Scope, Depends(merchant_scope)]


async def merchant_write_scope(
    request: Request, scope: MerchantScope, session: SessionDep
) -> Scope:
    """For an endpoint that changes something although its method is GET (a browser
    starting a consent): operators and admins only, and audited like any write."""
    if request.method in SAFE_METHODS:
        principal = scope.principal
        if principal is None or not principal.at_least(Role.operator):
            raise Forbidden("This needs the operator role or higher.", code="forbidden")
        _audit(request, session, principal, scope.merchant_id)
    return scope


MerchantWriteScope = Annotated[Scope, Depends(merchant_write_scope)]
