"""The caller of a request, whatever credential it used."""

from __future__ import annotations

from dataclasses import dataclass, replace

from conexapi.models import Role

_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Principal:
    #: "user" or "api_key"
    kind: str
    id: int
    #: email or key prefix: what the audit log shows
    label: str
    role: Role
    #: the merchants it may see; None for an admin (every merchant)
    merchant_ids: frozenset[int] | None
    #: the login an access token belongs to (users only)
    session_id: int | None = None
    #: the merchant named in ``X-Merchant-Id``, when the request names one
    acting_for: int | None = None

    @property
    def ref(self) -> str:
        """Stable name of the caller: ``user:12``, ``api_key:3``."""
        return f"{self.kind}:{self.id}"

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def acting_for_merchant(self, merchant_id: int) -> Principal:
        """This caller, seeing only ``merchant_id`` (one it sees) for this request."""
        assert self.sees(merchant_id)
        return replace(self, merchant_ids=frozenset({merchant_id}), acting_for=merchant_id)

    def sees(self, merchant_id: int | None) -> bool:
        if self.merchant_ids is None:
            return True
        return merchant_id is not None and merchant_id in self.merchant_ids
