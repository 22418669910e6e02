"""What a sync run needs from its process: resources, connectors and credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conexapi.connections.errors import ReauthRequired
from conexapi.integrations import Integrations, integrations
from conexapi.kit.resources import Resources
from conexapi.models import Connection
from connectors.models import ErpCredentials


@dataclass
class SyncContext:
    res: Resources
    integrations: Integrations

    @classmethod
    def of(cls, res: Resources) -> SyncContext:
        found = res.extras.get("sync_context")
        if isinstance(found, SyncContext):
            return found
        ctx = cls(res=res, integrations=integrations(res))
        res.extras["sync_context"] = ctx
        return ctx

    def token_service(self, connector: str) -> Any:
        from conexapi.connections.tokens import get_token_service

        return get_token_service(self.res, connector)

    async def access_token(self, connection: Connection) -> str:
        token: str = await self.token_service(connection.connector).access_token(connection.id)
        return token

    async def erp_credentials(self, connection: Connection) -> ErpCredentials:
        from conexapi.connections.tokens import erp_credentials

        async with self.res.sessionmaker() as session:
            creds: ErpCredentials = await erp_credentials(session, connection.id)
        return creds


__all__ = ["ReauthRequired", "SyncContext"]
