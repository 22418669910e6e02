"""Siigo's settings: ``CONEXAPI_SIIGO_*`` (and the sandbox's port)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from connectors.base import ConnectorSettings


class SiigoSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="CONEXAPI_SIIGO_")

    sandbox_urls: ClassVar[tuple[str, ...]] = ("api_url",)

    #: Siigo Nube API base URL; point it at the sandbox to try.
    api_url: str = "https://api.siigo.com"
    #: Sent as the ``Partner-Id`` header Siigo requires on every call.
    partner_id: str = "ConexAPI"
    #: Requests per window for a Siigo production company, shared by every worker (Siigo
    #: allows 100/min). A company linked in test mode gets Siigo's 10; a connection can set
    #: its own (``requests_per_minute`` on the connections API).
    requests_per_minute: int = 100
    #: The window Siigo's limits count over (shorter only in tests).
    rate_window_seconds: float = 60.0
    #: Where ``conexapi sandbox`` serves the simulated Siigo.
    sandbox_port: int | None = Field(default=8102, validation_alias="CONEXAPI_SANDBOX_SIIGO_PORT")
