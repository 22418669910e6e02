"""Error schemas in the OpenAPI document: every operation declares the envelope it answers
failures with, so clients (and schema checks) can rely on the document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(
        description="Stable machine-readable code: not_found, forbidden, conflict, "
        "already_invoiced, validation_error, unauthorized, rate_limited, ...",
        examples=["not_found"],
    )
    message: str = Field(examples=["order 42 not found."])
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    """The body of every failure."""

    status: str = Field(pattern="^error$", examples=["error"])
    error: ErrorBody
    request_id: str | None = Field(default=None, examples=["3f0c9b2ad1e44f4f8b7a0e2c1d5e6f70"])


_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, bad header).",
    401: "Missing, expired, tampered or revoked credentials.",
    403: "The caller's role does not allow this.",
    404: "Not found, or not visible to the caller.",
    405: "Method not allowed.",
    409: "Conflicts with the current state (e.g. the order is already invoiced).",
    413: "The request body is too large.",
    415: "The body's content type is not one the operation takes.",
    422: "The request is not valid.",
    429: "Too many attempts.",
    500: "Internal error (logged).",
    503: "Not ready.",
}

ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the envelope model under each status code."""
    return {code: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[code]} for code in codes}


#: What any authenticated ops route can answer besides its success.
COMMON_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 429, 500)


def document_errors(app: FastAPI) -> None:
    """Declare the envelope for every failure status of every operation that does not already.

    FastAPI documents 422 as its own ``HTTPValidationError``; this service answers the
    envelope instead, so that entry is replaced too. Done on the generated document, so it
    covers every router, whoever wrote it.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        defs = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in defs.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault("ErrorEnvelope", defs)
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                for code, description in _DESCRIPTIONS.items():
                    if code in (405, 415, 503) and str(code) not in responses:
                        continue
                    current = responses.get(str(code))
                    if current is None or _is_validation_default(current):
                        responses[str(code)] = {
                            "description": description,
                            "content": {"application/json": {"schema": ERROR_REF}},
                        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_validation_default(response: dict[str, Any]) -> bool:
    content = response.get("content", {}).get("application/json", {})
    ref = content.get("schema", {}).get("$ref", "")
    return bool(ref.endswith("/HTTPValidationError"))
