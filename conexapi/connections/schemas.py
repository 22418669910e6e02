from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from conexapi.models import Connection, ConnectionStatus


class AuthorizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the browser goes back to when the consent ends (an allowed origin only).
    return_to: str | None = Field(default=None, max_length=1000)
    #: Marketplace site (Mercado Libre: MCO, MLM, ...); the connector's default when absent.
    site: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")


class AuthorizeOut(BaseModel):
    authorization_url: str
    expires_at: datetime


class CredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=200)
    access_key: SecretStr = Field(min_length=8, max_length=1000)
    name: str | None = Field(default=None, max_length=200)


class ConnectionOut(BaseModel):
    """A connection as the API shows it: never its credentials or tokens."""

    id: int
    connector: str
    external_account_id: str
    display_name: str
    status: str
    needs_reauth: bool
    token_expires_at: datetime | None
    last_error: str | None
    last_refresh_failed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conn: Connection) -> ConnectionOut:
        return cls(
            id=conn.id,
            connector=conn.connector,
            external_account_id=conn.external_account_id,
            display_name=conn.display_name,
            status=conn.status,
            needs_reauth=conn.status == ConnectionStatus.needs_reauth,
            token_expires_at=conn.token_expires_at,
            last_error=conn.last_error,
            last_refresh_failed_at=conn.last_refresh_failed_at,
            created_at=conn.created_at,
            updated_at=conn.updated_at,
        )


class ConnectionPage(BaseModel):
    items: list[ConnectionOut]
    total: int
    limit: int
    offset: int
