from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from conexapi.models import Connection, ConnectionStatus

SITE_MAX_LENGTH = 8

#: One of the connector's modes (Siigo: ``production`` or ``test``, a test company being
#: allowed 10 requests a minute instead of 100).
Mode = Annotated[str, Field(min_length=1, max_length=32, examples=["test"])]
#: The connection's own budget upstream, instead of its mode's (per the connector's window,
#: a minute).
RequestsPerMinute = Annotated[int, Field(ge=1, le=100_000, examples=[50])]


class AuthorizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Where the browser goes back to when the consent ends (an allowed origin only).
    return_to: str | None = Field(default=None, max_length=1000)
    #: Marketplace site (one of the connector's ``sites``); the connector's default when
    #: absent. The bound is the stored column's.
    site: str | None = Field(default=None, max_length=SITE_MAX_LENGTH)


class AuthorizeOut(BaseModel):
    authorization_url: str
    expires_at: datetime


class CredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=3, max_length=200)
    access_key: SecretStr = Field(min_length=8, max_length=1000)
    name: str | None = Field(default=None, max_length=200)
    #: The company's mode (the ERP's API does not say it); the connector's default when
    #: absent, or what was stored when the company is linked again.
    mode: Mode | None = None
    requests_per_minute: RequestsPerMinute | None = None


class ConnectionUpdate(BaseModel):
    """What can change on a linked connection; a field sent as null goes back to the
    connector's default, a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode | None = None
    requests_per_minute: RequestsPerMinute | None = None


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
    #: The account's mode as declared; null: the connector's default.
    mode: str | None
    #: The connection's own request budget; null: its mode's.
    requests_per_minute: int | None
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
            mode=conn.mode,
            requests_per_minute=conn.requests_per_minute,
            created_at=conn.created_at,
            updated_at=conn.updated_at,
        )


class ConnectionView(ConnectionOut):
    merchant_id: int

    @classmethod
    def of(cls, conn: Connection) -> ConnectionView:
        return cls(**ConnectionOut.of(conn).model_dump(), merchant_id=conn.merchant_id)
