from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conexapi.deps import ResourcesDep, SettingsDep
from conexapi.health.service import readiness
from conexapi.kit.api.openapi import error_responses
from conexapi.kit.errors import Unauthorized
from conexapi.kit.security import METRICS_REFUSED, bearer_matches

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database reachable, migrations at head, Redis reachable when configured",
    responses={503: {"description": "Not ready; the checks say why"}},
)
async def readyz(resources: ResourcesDep, request: Request) -> JSONResponse:
    ok, checks = await readiness(resources, getattr(request.app.state, "embedded_worker", None))
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process (each worker serves its own)",
    response_class=Response,
    responses=error_responses(401),
)
async def metrics(request: Request, settings: SettingsDep) -> Response:
    token = settings.metrics_token.get_secret_value()
    if token and not bearer_matches(request.headers.get("authorization"), token):
        raise Unauthorized(METRICS_REFUSED)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
