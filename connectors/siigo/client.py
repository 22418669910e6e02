"""Siigo's HTTP session: one token per account, the shared rate limit, the common headers,
and the single point where answers are classified (:mod:`connectors.siigo.errors`).

Every request waits for its company's slot on the shared schedule (the company's budget
comes with its credentials); a refusal for exceeding the limit anyway pushes that
schedule back for every worker before the error is raised."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from httpx._client import UseClientDefault
from pydantic import SecretStr

from connectors.base import NoLimit, RateLimiter
from connectors.errors import ConnectorError, PermanentError, RateLimited
from connectors.models import ErpCredentials, ErpSession, RateBudget
from connectors.siigo import wire
from connectors.siigo.errors import (
    REQUEST_ID_HEADER,
    error_from_exception,
    error_from_response,
)
from connectors.siigo.limits import DEFAULT_BUDGET
from connectors.siigo.schemas import PARTNER_ID_RE

#: A token is renewed this long before it expires (or a tenth of its life, if shorter).
RENEW_MARGIN = timedelta(minutes=5)
#: ``expires_in`` above this is taken as milliseconds: the blueprint calls it milliseconds,
#: the real service sends seconds (86400).
_MAX_SECONDS = 10 * 86400

QueryParams = Mapping[str, str | int]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: datetime
    renew_at: datetime
    key_fingerprint: str = field(repr=False)


def _fingerprint(credentials: ErpCredentials) -> str:
    # Regenerating the access key in Siigo voids the old one: a changed key must not reuse
    # a token obtained with the previous one.
    return hashlib.sha256(credentials.access_key.get_secret_value().encode()).hexdigest()


class SiigoClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        partner_id: str,
        limiter: RateLimiter | None = None,
        timeout: float | None = 30.0,
        clock: Callable[[], datetime] = utcnow,
        budget: RateBudget = DEFAULT_BUDGET,
    ) -> None:
        if not PARTNER_ID_RE.fullmatch(partner_id):
            raise ValueError("Siigo's Partner-Id must be 3 to 100 letters or digits")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.partner_id = partner_id
        self.limiter: RateLimiter = limiter or NoLimit()
        self.timeout = timeout
        self.clock = clock
        #: For credentials that carry no budget of their own.
        self.budget = budget
        self._tokens: dict[str, _Token] = {}
        self._auth_locks: dict[str, asyncio.Lock] = {}

    # --- tokens ---------------------------------------------------------------------

    async def authenticate(self, credentials: ErpCredentials) -> ErpSession:
        """A fresh token (``POST /auth``), which also replaces the cached one."""
        lock = self._auth_locks.setdefault(credentials.username, asyncio.Lock())
        async with lock:
            token = await self._post_auth(credentials)
            self._tokens[credentials.username] = token
        return ErpSession(access_token=SecretStr(token.value), expires_at=token.expires_at)

    async def _token(self, credentials: ErpCredentials) -> _Token:
        username = credentials.username
        fingerprint = _fingerprint(credentials)
        cached = self._cached(username, fingerprint)
        if cached is not None:
            return cached
        # One /auth per account at a time: concurrent calls wait for the first one's token.
        lock = self._auth_locks.setdefault(username, asyncio.Lock())
        async with lock:
            cached = self._cached(username, fingerprint)
            if cached is not None:
                return cached
            token = await self._post_auth(credentials)
            self._tokens[username] = token
            return token

    def _cached(self, username: str, fingerprint: str) -> _Token | None:
        token = self._tokens.get(username)
        if token is None or token.key_fingerprint != fingerprint or self.clock() >= token.renew_at:
            return None
        return token

    def _forget(self, username: str, token: _Token) -> None:
        if self._tokens.get(username) is token:
            del self._tokens[username]

    async def _post_auth(self, credentials: ErpCredentials) -> _Token:
        body = {
            "username": credentials.username,
            "access_key": credentials.access_key.get_secret_value(),
        }
        response, request_id = await self._send(credentials, "POST", "/auth", token=None, body=body)
        if not response.is_success:
            raise await self._failure(credentials, response, request_id)
        try:
            data = response.json()
            value = str(data["access_token"])
            expires_in = float(data.get("expires_in") or 86400)
        except (ValueError, KeyError, TypeError):
            raise PermanentError(
                "Siigo's /auth answer has no access_token",
                status_code=response.status_code,
                request_id=response.headers.get(REQUEST_ID_HEADER) or request_id,
            ) from None
        if expires_in > _MAX_SECONDS:
            expires_in /= 1000
        lifetime = timedelta(seconds=expires_in)
        now = self.clock()
        return _Token(
            value=value,
            expires_at=now + lifetime,
            renew_at=now + lifetime - min(RENEW_MARGIN, lifetime / 10),
            key_fingerprint=_fingerprint(credentials),
        )

    # --- requests -------------------------------------------------------------------

    async def request(
        self,
        credentials: ErpCredentials,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> httpx.Response:
        """A successful answer to ``method path``, or the classified error.

        A 401 drops the cached token and the call is made once more with a new one (the
        token may have expired or been revoked early); a second 401 is an ``AuthError``.
        """
        token = await self._token(credentials)
        response, request_id = await self._send(
            credentials, method, path, token, params, body, headers, timeout_seconds
        )
        if response.status_code == 401:
            self._forget(credentials.username, token)
            token = await self._token(credentials)
            response, request_id = await self._send(
                credentials, method, path, token, params, body, headers, timeout_seconds
            )
        if response.is_success:
            return response
        raise await self._failure(credentials, response, request_id)

    async def _failure(
        self, credentials: ErpCredentials, response: httpx.Response, request_id: str
    ) -> ConnectorError:
        """The classified error for a failed answer. Over the limit, the company's shared
        schedule is pushed back first, by the ``Retry-After`` Siigo gave or else by a whole
        window (which empties a sliding window whoever filled it): every worker then waits,
        so a refusal is not followed by more (Siigo blocks API users who keep erring)."""
        error = error_from_response(response, request_id)
        if isinstance(error, RateLimited):
            seconds = error.retry_after
            if seconds is None:
                seconds = self._budget(credentials).window_seconds
            await self.limiter.push_back(_limiter_key(credentials), seconds)
        return error

    def _budget(self, credentials: ErpCredentials) -> RateBudget:
        return credentials.budget or self.budget

    async def _send(
        self,
        credentials: ErpCredentials,
        method: str,
        path: str,
        token: _Token | None,
        params: QueryParams | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
    ) -> tuple[httpx.Response, str]:
        request_id = uuid.uuid4().hex
        sent_headers = {
            "Partner-Id": self.partner_id,
            "Accept": "application/json",
            REQUEST_ID_HEADER: request_id,
        }
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token.value}"
        content = None
        if body is not None:
            content = wire.dumps(body).encode()
            sent_headers["Content-Type"] = "application/json"
        if headers:
            sent_headers.update(headers)
        await self.limiter.acquire(_limiter_key(credentials), self._budget(credentials))
        try:
            response = await self.http.request(
                method,
                f"{self.base_url}{path}",
                params=dict(params) if params else None,
                content=content,
                headers=sent_headers,
                timeout=_timeout(timeout_seconds if timeout_seconds is not None else self.timeout),
            )
        except httpx.TransportError as exc:
            raise error_from_exception(exc, request_id) from exc
        return response, request_id


def _limiter_key(credentials: ErpCredentials) -> str:
    # Siigo limits per company, and one API user belongs to one company.
    return f"siigo:{credentials.username}"


def _timeout(seconds: float | None) -> float | UseClientDefault:
    return httpx.USE_CLIENT_DEFAULT if seconds is None else seconds


__all__ = ["RENEW_MARGIN", "SiigoClient", "utcnow"]
