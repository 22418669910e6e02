"""Siigo's request limits per company ("Límite de solicitudes", ``requests_limit``): 100
requests a minute for a production company, 10 for a test company ("empresa de pruebas").

Siigo's API does not say which kind a company is (``/auth`` answers a token and nothing
else; test companies are handed out by Siigo's support), so the merchant names the mode
when linking the company, production by default, and can change it or set a budget of its
own on the connection later.
"""

from __future__ import annotations

from connectors.models import RateBudget

PRODUCTION = "production"
TEST = "test"
#: The default first.
MODES = (PRODUCTION, TEST)
#: Requests per window Siigo allows a company of each mode.
REQUESTS = {PRODUCTION: 100, TEST: 10}
WINDOW_SECONDS = 60.0


def budget(
    mode: str | None,
    requests: int | None = None,
    *,
    production_requests: int = REQUESTS[PRODUCTION],
    window_seconds: float = WINDOW_SECONDS,
) -> RateBudget:
    """A company's budget: ``requests`` when the connection sets it, else its mode's (the
    production one configurable, for companies Siigo gives more)."""
    mode = mode or PRODUCTION
    if mode not in MODES:
        raise ValueError(f"Siigo has no {mode!r} mode; use one of {', '.join(MODES)}")
    if requests is None:
        requests = production_requests if mode == PRODUCTION else REQUESTS[mode]
    return RateBudget(requests=requests, window_seconds=window_seconds)


DEFAULT_BUDGET = budget(None)

__all__ = ["DEFAULT_BUDGET", "MODES", "PRODUCTION", "REQUESTS", "TEST", "budget"]
