"""One error hierarchy for every connector.

Each client classifies a failure once, where the HTTP call is made, and raises one of
these; nothing else in the product branches on upstream status codes:

- :class:`TransientError` — 5xx, 429, timeouts: back off with jitter, honour ``retry_after``
  (:class:`RateLimited` for a 429).
- :class:`AuthError` — 401, revoked or invalid grants: the connection needs re-authorization.
- :class:`DataError` — 4xx validation, a missing mapping: park for a person, no blind retry.
- :class:`PermanentError` — anything that will not succeed by retrying or re-authorizing.
"""

from __future__ import annotations


class ConnectorError(Exception):
    kind = "connector"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.status_code:
            parts.append(f"(HTTP {self.status_code})")
        return " ".join(parts)


class TransientError(ConnectorError):
    kind = "transient"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code, request_id=request_id)
        self.retry_after = retry_after


class BudgetExhausted(TransientError):
    """The account's request budget has no slot soon enough: nothing was sent, and the run
    goes back to the database until ``retry_after`` instead of sleeping in a worker slot.
    Not a failure and not an attempt."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after, code="rate_budget")


class RateLimited(TransientError):
    """The service refused the call for exceeding its rate limit (HTTP 429 or its own
    code for it). Transient like any other; the client that sees it also pushes the
    account's shared schedule back, since refusals that go on get API users blocked."""


class AuthError(ConnectorError):
    kind = "auth"


class DataError(ConnectorError):
    kind = "data"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, status_code=status_code, request_id=request_id)
        self.field = field


class PermanentError(ConnectorError):
    kind = "permanent"


class InvalidNotification(DataError):
    """A webhook that fails verification or parsing (answered 400, never stored as work)."""
