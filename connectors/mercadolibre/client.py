"""HTTP access to Mercado Libre, and the one place its failures are classified.

Every request the connector makes goes through :meth:`MercadoLibreClient.request`; an
upstream answer or transport failure becomes either an :class:`MLResponse` or one of the
:mod:`connectors.errors` classes. Nothing above this module looks at status codes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from connectors.base import RateLimiter
from connectors.errors import (
    AuthError,
    ConnectorError,
    DataError,
    PermanentError,
    TransientError,
)
from connectors.http import parse_retry_after
from connectors.models import RateBudget

#: Error codes that mean the seller's grant or token is gone: re-authorize (or, for an
#: ``invalid_grant`` right after a refresh, re-read the token a concurrent refresh saved).
AUTH_CODES = frozenset(
    {
        "invalid_grant",
        "invalid_token",
        "expired_token",
        "invalid_operator_user_id",
    }
)
#: OAuth errors about the application itself; re-authorizing the seller cannot fix them.
APP_CODES = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "unauthorized_application",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
_MAX_MESSAGE = 500


@dataclass(frozen=True)
class MLResponse:
    status_code: int
    #: The JSON body, floats parsed as ``Decimal`` so money never passes through binary floats.
    data: Any
    headers: httpx.Headers
    request_id: str | None
    #: Parts Mercado Libre could not include in a 206 answer (``X-Content-Missing``).
    missing: tuple[str, ...] = ()


def loads(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=Decimal)


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """``(code, message, field)`` from an ML error body (generic or OAuth shape)."""
    if not isinstance(body, dict):
        return None, None, None
    # PolicyAgent denials (403 PA_UNAUTHORIZED_RESULT_FROM_POLICIES) put it in ``code``.
    code = body.get("error") or body.get("code")
    message = body.get("error_description") or body.get("message")
    # A 429 often comes as {"message": "local_rate_limited"} with no ``error``.
    if not isinstance(code, str) or not code:
        code = message if isinstance(message, str) and " " not in message else None
    field = None
    cause = body.get("cause")
    if isinstance(cause, list):
        for entry in cause:
            if isinstance(entry, dict):
                candidate = entry.get("field") or entry.get("parameter")
                refs = entry.get("references")
                if not candidate and isinstance(refs, list) and refs:
                    candidate = refs[0]
                if isinstance(candidate, str):
                    field = candidate
                    break
    return (
        code if isinstance(code, str) else None,
        str(message)[:_MAX_MESSAGE] if message is not None else None,
        field,
    )


def classify(
    status: int, headers: Mapping[str, str], body: Any, *, what: str
) -> ConnectorError | None:
    """Map one HTTP answer to the error hierarchy (None for a success)."""
    if status < 400:
        return None
    request_id = headers.get("x-request-id")
    code, message, field = _error_fields(body)
    text = f"Mercado Libre {what}: {message or f'HTTP {status}'}"
    if status == 429:
        return TransientError(
            text,
            retry_after=parse_retry_after(headers.get("retry-after")),
            code=code or "local_rate_limited",
            status_code=status,
            request_id=request_id,
        )
    if status >= 500 or status == 408:
        return TransientError(
            text,
            retry_after=parse_retry_after(headers.get("retry-after")),
            code=code or "upstream_unavailable",
            status_code=status,
            request_id=request_id,
        )
    if code in APP_CODES:
        return PermanentError(text, code=code, status_code=status, request_id=request_id)
    if status == 401 or code in AUTH_CODES:
        # ML's 401 body often says ``"error": "not_found"``; keep a code that means auth.
        return AuthError(
            text,
            code=code if code in AUTH_CODES else "invalid_token",
            status_code=status,
            request_id=request_id,
        )
    if status in (400, 403, 404, 409, 422):
        return DataError(
            text,
            code=code or f"http_{status}",
            field=field,
            status_code=status,
            request_id=request_id,
        )
    return PermanentError(
        text, code=code or f"http_{status}", status_code=status, request_id=request_id
    )


def classify_transport(exc: httpx.HTTPError, *, what: str) -> ConnectorError:
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"Mercado Libre {what}: timed out ({name})", code="timeout")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        return TransientError(f"Mercado Libre {what}: {name}", code="connection_error")
    if isinstance(exc, httpx.DecodingError):
        return TransientError(f"Mercado Libre {what}: undecodable body", code="decoding_error")
    # Bad URL scheme, local protocol misuse, redirect loops: configuration, not weather.
    return PermanentError(f"Mercado Libre {what}: {name}", code="transport_error")


#: Mercado Libre limits per application and publishes no number; 100 requests a minute is
#: the one figure it declares (for an orders route).
DEFAULT_BUDGET = RateBudget(requests=100, window_seconds=60.0)


class MercadoLibreClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        limiter: RateLimiter,
        limiter_key: str,
        budget: RateBudget = DEFAULT_BUDGET,
    ) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._limiter = limiter
        self._limiter_key = limiter_key
        self._budget = budget

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        token: str | None = None,
        params: Mapping[str, str | int] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> MLResponse:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        # Mercado Libre limits per application (client id), so every worker shares one key.
        await self._limiter.acquire(self._limiter_key, self._budget)
        try:
            response = await self._http.request(
                method, self._api_url + path, params=params, data=form, headers=headers
            )
        except httpx.HTTPError as exc:
            raise classify_transport(exc, what=what) from exc
        try:
            body: Any = loads(response.content) if response.content else None
        except ValueError:
            body = None
        error = classify(response.status_code, response.headers, body, what=what)
        if error is not None:
            raise error
        request_id = response.headers.get("x-request-id")
        if not isinstance(body, dict | list):
            # A 2xx that is not JSON comes from a proxy or an incident page, not from the API.
            raise TransientError(
                f"Mercado Libre {what}: unexpected non-JSON answer",
                code="invalid_response",
                status_code=response.status_code,
                request_id=request_id,
            )
        missing: tuple[str, ...] = ()
        if response.status_code == 206:
            raw = response.headers.get("x-content-missing", "")
            missing = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
        return MLResponse(response.status_code, body, response.headers, request_id, missing)
