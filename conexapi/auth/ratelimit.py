"""Rate limits for the doors that take credentials (password logins, tokens, API keys).

Counted in Redis when ``CONEXAPI_REDIS_URL`` is set, so every API process shares them;
in process memory otherwise (the embedded mode has one process). Built with the process's
resources (``Resources.auth_limiter``).

The design (OWASP Authentication Cheat Sheet: a lockout keyed on the account alone is a
denial of service anyone can trigger) keys every refusal on where the attempt comes from,
so no limit here is a switch that turns a user off:

- **Passwords** can be guessed. Attempts are limited per (client address, account) pair
  (``login_rate_limit``): an attacker hammering ``admin`` locks out ``admin`` from the
  attacker's own address only; the admin logs in from any other one, and a success
  clears its pair. Per address across accounts (``login_address_rate_limit``, higher):
  one address spraying a password over many accounts, and the password hashing one
  address can make us do. Per account across addresses (``login_account_rate_limit``,
  much higher, failures only): many addresses guessing one account. Refusing the account
  would be the switch again, so it only slows guessing: while the account is past it,
  an address gets one try on it per ``login_rate_limit`` window. A right password from
  an address that has not just tried still logs in at once.
- **Access tokens, API keys and refresh tokens** are random and far too long to guess, so
  a valid one is never refused, whatever else came from its address. Only failures are
  counted (``auth_failure_rate_limit``); past the limit a failure gets 429, not 401.

The client address is the connection's peer, or what a trusted proxy says it is
(``CONEXAPI_TRUSTED_PROXIES``, see ``conexapi/kit/proxies.py``); behind an untrusted
proxy every client shares the proxy's address.
"""

from __future__ import annotations

import math
import time

import structlog
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.util import WindowStats
from starlette.exceptions import HTTPException

from conexapi.settings import Settings

log = structlog.get_logger(__name__)


class _StoreDown(Exception):
    """The limits store cannot be reached: limits are a guard, not a gate."""


class AuthRateLimiter:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(storage)
        self.pair = parse(settings.login_rate_limit)
        self.address = parse(settings.login_address_rate_limit)
        self.account = parse(settings.login_account_rate_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthRateLimiter:
        url = settings.redis_url
        storage: Storage = (
            RedisStorage(
                f"async+{url}",
                implementation="redispy",
                key_prefix="conexapi:rl",
                wrap_exceptions=True,
            )
            if url
            else MemoryStorage()
        )
        return cls(storage, settings)

    async def hit(self, limit: str, *identifiers: str) -> None:
        """Count one attempt; refuse with 429 (and Retry-After) past the limit."""
        item = parse(limit)
        try:
            allowed = await self.limiter.hit(item, *identifiers)
            if allowed:
                return
            stats = await self.limiter.get_window_stats(item, *identifiers)
        except Exception as exc:  # the store is down: limits are a guard, not a gate
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            return
        raise _too_many(item, stats.reset_time)

    async def credential_failed(self, address: str) -> None:
        """A token, API key or refresh token was refused: count it against its address,
        and answer 429 instead of 401 past the limit. Never called for a valid one."""
        await self.hit(self.settings.auth_failure_rate_limit, "auth-failures", address)

    async def begin_login(self, account: str, address: str) -> None:
        """Before a password is checked: count the attempt, or refuse it with 429.

        Attempts are counted before the check, atomically, so parallel requests cannot
        slip past a limit while the hashes are computed; a success clears its pair.
        """
        try:
            await self._begin_login(account, address)
        except _StoreDown:
            return

    async def _begin_login(self, account: str, address: str) -> None:
        # The pair first: an address refused for one account has not used its budget for
        # the others (colleagues behind the same address keep theirs).
        if not await self._acquire(self.pair, "login-pair", address, account):
            stats = await self._stats(self.pair, "login-pair", address, account)
            raise _too_many(self.pair, stats.reset_time)
        if not await self._acquire(self.address, "login-address", address):
            stats = await self._stats(self.address, "login-address", address)
            raise _too_many(self.address, stats.reset_time)
        pair = await self._stats(self.pair, "login-pair", address, account)
        if self.pair.amount - pair.remaining > 1:
            # Not this address's first try on this account lately. While the account is
            # under a wide attack, one try is all an address gets for a while.
            on_account = await self._stats(self.account, "login-account", account)
            if on_account.remaining <= 0:
                raise _too_many(self.pair, pair.reset_time)

    async def login_failed(self, account: str) -> None:
        """A wrong password (or unknown account): counts towards the account's throttle."""
        try:
            if not await self.limiter.hit(self.account, "login-account", account):
                log.warning("login_account_throttled", account=account)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)

    async def login_succeeded(self, account: str, address: str) -> None:
        """The right password forgives this address its earlier typos on this account."""
        try:
            await self.limiter.clear(self.pair, "login-pair", address, account)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)

    async def _acquire(self, item: RateLimitItem, *identifiers: str) -> bool:
        try:
            return await self.limiter.hit(item, *identifiers)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            raise _StoreDown from exc

    async def _stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        try:
            return await self.limiter.get_window_stats(item, *identifiers)
        except Exception as exc:
            log.warning("rate_limit_unavailable", error=type(exc).__name__)
            raise _StoreDown from exc


def _too_many(item: RateLimitItem, reset_time: float) -> HTTPException:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    exc = HTTPException(
        429, detail="Too many attempts; try again later.", headers={"Retry-After": str(retry_after)}
    )
    exc.details = {"limit": str(item), "retry_after_seconds": retry_after}  # type: ignore[attr-defined]
    return exc


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy said (``kit/proxies.py``)."""
    return request.client.host if request.client else "unknown"
