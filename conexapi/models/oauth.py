from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conexapi.models.base import Base, BigId, IdMixin, UTCDateTime, utcnow


class OAuthState(IdMixin, Base):
    """A consent in progress: single-use, short-lived, bound to who started it.

    Only a hash of the ``state`` is stored, so a read of this table cannot be used to
    finish someone else's consent; the PKCE verifier is encrypted like every secret.
    """

    __tablename__ = "oauth_states"
    __table_args__ = (Index("ix_oauth_states_expires_at", "expires_at"),)

    #: SHA-256 hex of the state sent to the authorization server.
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    connector: Mapped[str] = mapped_column(String(32), nullable=False)
    merchant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("merchants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    #: Who started the consent (the ops API's user id once it exists).
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Encrypted PKCE code verifier.
    code_verifier: Mapped[str] = mapped_column(Text, nullable=False)
    return_to: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    site: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: SHA-256 hex of a cookie set on the browser that started the flow (browser starts only).
    browser_binding: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: How the flow ended: linked, access_denied, exchange_failed, ...
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
