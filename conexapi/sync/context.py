"""What a sync run needs from its process: resources, connectors and credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from conexapi.connections.errors import ReauthRequired
from conexapi.integrations import Integrations
from conexapi.models import Connection, utcnow
from connectors.models import ErpCredentials

if TYPE_CHECKING:  # built by Resources itself
    from conexapi.kit.resources import Resources

_CACHE_LIMIT = 10_000


@dataclass
class SyncContext:
    res: Resources
    integrations: Integrations
    # Decrypted secrets of the connection rows runs have claimed, keyed by the row's
    # (id, version): every credential write bumps the version, so a run that loaded a
    # newer row never sees an older secret. Saves a query and a decryption per run.
    _tokens: dict[tuple[int, int], tuple[str, datetime | None]] = field(default_factory=dict)
    _erp: dict[tuple[int, int], ErpCredentials] = field(default_factory=dict)

    @classmethod
    def of(cls, res: Resources) -> SyncContext:
        """The process's one context (``Resources.sync``), so its caches are shared."""
        return res.sync

    def token_service(self, connector: str) -> Any:
        from conexapi.connections.tokens import get_token_service

        return get_token_service(self.res, connector)

    async def access_token(self, connection: Connection) -> str:
        key = (connection.id, connection.version)
        margin = timedelta(seconds=self.res.settings.token_refresh_margin_seconds)
        hit = self._tokens.get(key)
        # An expiry of None is a token that never expires.
        if hit is not None and (hit[1] is None or hit[1] - margin > utcnow()):
            return hit[0]
        token: str = await self.token_service(connection.connector).access_token(connection.id)
        if len(self._tokens) > _CACHE_LIMIT:
            self._tokens.clear()
        self._tokens[key] = (token, connection.token_expires_at)
        return token

    async def erp_credentials(self, connection: Connection) -> ErpCredentials:
        """The company's credentials, with the request budget its connection gives it
        (read from the row as loaded, so a changed mode or budget applies at once)."""
        from conexapi.connections.tokens import erp_credentials

        key = (connection.id, connection.version)
        creds = self._erp.get(key)
        if creds is None:
            async with self.res.sessionmaker() as session:
                creds = await erp_credentials(session, connection.id)
            if len(self._erp) > _CACHE_LIMIT:
                self._erp.clear()
            self._erp[key] = creds
        erp = self.integrations.erp(connection.connector)
        budget = erp.rate_budget(connection.mode, connection.requests_per_minute)
        return creds.model_copy(update={"budget": budget})


__all__ = ["ReauthRequired", "SyncContext"]
