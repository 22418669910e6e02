"""Mercado Libre's settings: ``CONEXAPI_MERCADOLIBRE_*`` (and the sandbox's port)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from connectors.base import ConnectorSettings


class MercadoLibreSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="CONEXAPI_MERCADOLIBRE_")

    sandbox_urls: ClassVar[tuple[str, ...]] = ("api_url", "auth_url")

    #: Mercado Libre API and consent (OAuth) base URLs; point them at the sandbox to try.
    api_url: str = "https://api.mercadolibre.com"
    auth_url: str = "https://auth.mercadolibre.com.co"
    #: The application's credentials from the Mercado Libre developer console.
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    #: Must match the redirect URI registered for the application.
    redirect_uri: str = "http://127.0.0.1:8000/oauth/mercadolibre/callback"
    #: Comma-separated source IPs allowed to post notifications; empty disables the check.
    notification_ips: str = ""
    #: Optional shared secret expected as ``?token=`` on the notification URL.
    webhook_token: SecretStr = SecretStr("")
    #: Requests per minute to Mercado Libre for the whole application (every seller),
    #: shared by every worker. Mercado Libre publishes no limit; 100 is the one figure it
    #: declares (for an orders route).
    requests_per_minute: int = 100
    #: Where ``conexapi sandbox`` serves the simulated Mercado Libre.
    sandbox_port: int | None = Field(
        default=8101, validation_alias="CONEXAPI_SANDBOX_MERCADOLIBRE_PORT"
    )
