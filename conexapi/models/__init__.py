"""Every ORM model, so Alembic sees one metadata."""

from conexapi.models.audit import AuditEntry, IdempotentRequest
from conexapi.models.auth import ApiKey, ApiKeyMerchant, AuthSession, Role, User, UserMerchant
from conexapi.models.base import Base, utcnow
from conexapi.models.connection import Connection, ConnectionStatus
from conexapi.models.merchant import Merchant
from conexapi.models.oauth import OAuthState
from conexapi.models.pipeline import Mapping, MappingKind, Pipeline, PipelineStatus
from conexapi.models.reconcile import (
    DifferenceKind,
    ReconciliationLine,
    ReconciliationReport,
    SyncCursor,
)
from conexapi.models.sync import (
    ACTIVE_RUN_STATUSES,
    EventStatus,
    OrderState,
    OrderSync,
    RunStatus,
    SyncRun,
    WebhookEvent,
)

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "ApiKey",
    "ApiKeyMerchant",
    "AuditEntry",
    "AuthSession",
    "Base",
    "Connection",
    "ConnectionStatus",
    "DifferenceKind",
    "EventStatus",
    "IdempotentRequest",
    "Mapping",
    "MappingKind",
    "Merchant",
    "OAuthState",
    "OrderState",
    "OrderSync",
    "Pipeline",
    "PipelineStatus",
    "ReconciliationLine",
    "ReconciliationReport",
    "Role",
    "RunStatus",
    "SyncCursor",
    "SyncRun",
    "User",
    "UserMerchant",
    "WebhookEvent",
    "utcnow",
]
