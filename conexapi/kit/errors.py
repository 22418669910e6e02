"""One error family for the service and one envelope for every failure.

Services raise ``AppError`` subclasses; they never raise ``HTTPException``. The handlers
registered by :func:`install_error_handlers` turn every failure — ours, Starlette's 404
and 405, validation 422, oversized bodies and unhandled exceptions — into::

    {"status": "error", "error": {"code", "message", "details"}, "request_id"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from conexapi.kit.context import get_request_id

log = structlog.get_logger(__name__)


class AppError(Exception):
    code = "error"
    status_code = 400
    message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.details = details or {}
        super().__init__(self.message)


class BadRequest(AppError):
    code = "bad_request"
    status_code = 400


class ValidationFailed(AppError):
    code = "validation_error"
    status_code = 422
    message = "The request is not valid."


class Unauthorized(AppError):
    code = "unauthorized"
    status_code = 401
    message = "Authentication is required."


class Forbidden(AppError):
    code = "forbidden"
    status_code = 403
    message = "You are not allowed to do this."


class NotFound(AppError):
    code = "not_found"
    status_code = 404
    message = "Not found."


class Conflict(AppError):
    code = "conflict"
    status_code = 409
    message = "The request conflicts with the current state."


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status_code = 503
    message = "The service is not ready."


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": "error",
        "error": {"code": code, "message": message, "details": details or {}},
        "request_id": get_request_id(),
    }


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(envelope(code, message, details), status_code=status_code, headers=headers)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error."
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route for {request.method} {request.url.path}."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    details = getattr(exc, "details", None)
    return error_response(exc.status_code, code, message, details, headers=exc.headers)


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        out.append(
            {
                "loc": list(err.get("loc", ())),
                "msg": str(err.get("msg", "")),
                "type": err.get("type"),
            }
        )
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _jsonable_errors(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(
            400, "malformed_json", "The request body is not valid JSON.", {"errors": errors}
        )
    return error_response(422, "validation_error", "The request is not valid.", {"errors": errors})


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return error_response(500, "internal_error", "An internal error occurred; it has been logged.")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    from conexapi.db import is_lock_conflict

    if is_lock_conflict(exc):
        # Chosen as a deadlock victim: nothing was committed, and the same request will
        # most likely go through when sent again.
        return error_response(
            409,
            "concurrent_update",
            "Another request was changing the same records; nothing was done. Retry.",
            headers={"Retry-After": "1"},
        )
    log.exception("database_error", path=request.url.path, method=request.method)
    return error_response(
        503,
        "database_unavailable",
        "The database is not available; retry.",
        headers={"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
