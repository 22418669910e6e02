"""The one place where Siigo's answers become :mod:`connectors.errors`.

Siigo's synchronous error body is ``{"Status", "Errors": [{"Code", "Message", "Params",
"Detail"}]}`` (the batch notifications use the same keys in lower case; both are read).
Classification, from the blueprint's error-code descriptions:

- rate limited (transient): HTTP 429 / ``requests_limit`` whatever the status;
- transient: HTTP 408 / 5xx, network failures and timeouts, and the codes
  ``request_timeout``, ``service_unavailable``, ``documents_service``,
  ``payment_types_service``, ``general_service``, ``unhandled_error`` whatever the status;
- auth: HTTP 401 / ``unauthorized`` (the client re-authenticates once before raising it);
- data: the codes that say the document or customer must be fixed (``invalid_*``,
  ``parameter_*``, ``already_exists``, ``duplicated_document``, ``*_settings``, ...),
  with ``field`` = ``Params[0]``;
- permanent: everything else (403, 415, ``header_required`` / ``invalid_partner_id``, which
  are our own configuration, ``disabled_functionality``, unknown codes, ...).

Siigo sends no ``Retry-After`` (observed); one that is present is honoured, up to a day
(:func:`connectors.http.parse_retry_after`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from connectors.errors import (
    AuthError,
    ConnectorError,
    DataError,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.http import parse_retry_after

REQUEST_ID_HEADER = "x-request-id"
#: Siigo's code for a request over the company's limit (sent with HTTP 429).
RATE_LIMIT_CODE = "requests_limit"

TRANSIENT_CODES = frozenset(
    {
        "requests_limit",
        "request_timeout",
        "service_unavailable",
        "documents_service",
        "payment_types_service",
        "general_service",
        "unhandled_error",
    }
)
AUTH_CODES = frozenset({"unauthorized"})
DATA_CODES = frozenset(
    {
        "already_exists",
        "duplicated_document",
        "customer_settings",
        "document_settings",
        "company_settings",
        "product_settings",
        "warehouse_settings",
        "date_settings",
        "blocked_transactions",
        "length_max",
        "length_min",
        "not_found",
        "values_limit",
        "non_editable",
        "update_not_allowed",
    }
)
#: Prefixes of data codes (``invalid_total_payments``, ``parameter_required``, ...).
DATA_PREFIXES = ("invalid_", "parameter")
#: Codes about our own headers: no order data can fix them.
PERMANENT_CODES = frozenset({"header_required", "invalid_partner_id"})


@dataclass(frozen=True)
class SiigoErrorItem:
    code: str | None
    message: str
    params: tuple[str, ...]
    detail: str | None


def parse_error_body(body: Any) -> list[SiigoErrorItem]:
    """The errors in a Siigo error body; empty when the body has none."""
    if not isinstance(body, dict):
        return []
    errors = body.get("Errors", body.get("errors"))
    if not isinstance(errors, list):
        return []
    items = []
    for raw in errors:
        if not isinstance(raw, dict):
            continue
        code = raw.get("Code", raw.get("code"))
        message = raw.get("Message", raw.get("message"))
        params = raw.get("Params", raw.get("params")) or []
        detail = raw.get("Detail", raw.get("detail"))
        items.append(
            SiigoErrorItem(
                code=str(code) if code is not None else None,
                message=str(message) if message is not None else "",
                params=tuple(str(p) for p in params) if isinstance(params, list) else (),
                detail=str(detail) if detail is not None else None,
            )
        )
    return items


def classify(
    status: int | None,
    code: str | None,
    message: str,
    *,
    field: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ConnectorError:
    if status == 429 or code == RATE_LIMIT_CODE:
        return RateLimited(
            message,
            retry_after=retry_after,
            code=code,
            status_code=status,
            request_id=request_id,
        )
    if (code in TRANSIENT_CODES) or status == 408 or (status is not None and status >= 500):
        return TransientError(
            message,
            retry_after=retry_after,
            code=code,
            status_code=status,
            request_id=request_id,
        )
    if code in AUTH_CODES or status == 401:
        return AuthError(message, code=code, status_code=status, request_id=request_id)
    if code in PERMANENT_CODES:
        return PermanentError(message, code=code, status_code=status, request_id=request_id)
    if code is not None and (code in DATA_CODES or code.startswith(DATA_PREFIXES)):
        return DataError(message, code=code, field=field, status_code=status, request_id=request_id)
    return PermanentError(message, code=code, status_code=status, request_id=request_id)


def error_from_response(
    response: httpx.Response, sent_request_id: str | None = None
) -> ConnectorError:
    """The error for a non-2xx Siigo answer."""
    request_id = response.headers.get(REQUEST_ID_HEADER) or sent_request_id
    try:
        body = response.json()
    except ValueError:
        body = None
    items = parse_error_body(body)
    first = items[0] if items else None
    code = first.code if first else None
    if items:
        message = "; ".join(item.message or (item.code or "error") for item in items)
    else:
        message = f"Siigo answered HTTP {response.status_code}"
    return classify(
        response.status_code,
        code,
        message,
        field=first.params[0] if first and first.params else None,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def error_from_exception(
    exc: httpx.HTTPError, sent_request_id: str | None = None
) -> ConnectorError:
    """A request that got no answer: a timeout or a network failure, all transient. A POST
    that timed out may have been committed; retrying it under the same Idempotency-Key is
    what makes that safe."""
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "network_error"
    return TransientError(
        f"Siigo request failed: {type(exc).__name__}",
        code=code,
        request_id=sent_request_id,
    )


__all__ = [
    "RATE_LIMIT_CODE",
    "REQUEST_ID_HEADER",
    "SiigoErrorItem",
    "classify",
    "error_from_exception",
    "error_from_response",
    "parse_error_body",
]
