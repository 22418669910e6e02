"""Users, logins and API keys. Services flush at most; the unit of work commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.auth import passwords, tokens
from conexapi.auth.principal import Principal
from conexapi.db import unit_of_work
from conexapi.kit.errors import Conflict, NotFound, ValidationFailed
from conexapi.models import (
    ApiKey,
    ApiKeyMerchant,
    AuthSession,
    Merchant,
    Role,
    User,
    UserMerchant,
    utcnow,
)
from conexapi.settings import Settings

log = structlog.get_logger(__name__)

#: ``last_used_at`` is written at most this often, so reads do not all become writes.
TOUCH_EVERY = timedelta(seconds=60)
#: The furthest ahead an API key's expiry may be set: an expiry years away is a typo more
#: often than a plan. A key meant to last is made without one (and revoked when done).
API_KEY_MAX_LIFETIME = timedelta(days=730)


class AuthenticationFailed(Exception):
    """Any reason a credential is refused; the caller sees one message for all."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


# --- users ------------------------------------------------------------------------------


async def _check_merchants(session: AsyncSession, merchant_ids: Iterable[int]) -> list[int]:
    wanted = sorted(set(merchant_ids))
    if not wanted:
        return []
    found = set(await session.scalars(select(Merchant.id).where(Merchant.id.in_(wanted))))
    missing = [m for m in wanted if m not in found]
    if missing:
        raise ValidationFailed(
            "Unknown merchant id(s).", code="unknown_merchant", details={"merchant_ids": missing}
        )
    return wanted


def _check_scope(role: Role, merchant_ids: Sequence[int]) -> None:
    if role is not Role.admin and not merchant_ids:
        raise ValidationFailed(
            "An operator or viewer needs at least one merchant.",
            details={"field": "merchant_ids"},
        )


async def create_user(
    session: AsyncSession,
    email: str,
    password: str,
    role: Role,
    merchant_ids: Sequence[int] = (),
) -> User:
    if len(password) < passwords.MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"The password needs at least {passwords.MIN_PASSWORD_LENGTH} characters.",
            details={"field": "password"},
        )
    merchants = await _check_merchants(session, merchant_ids)
    _check_scope(role, merchants)
    user = User(
        email=normalize_email(email),
        password_hash=passwords.hash_password(password),
        role=role,
        is_active=True,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise Conflict("A user with this email exists.", code="email_taken") from None
    for merchant_id in merchants:
        session.add(UserMerchant(user_id=user.id, merchant_id=merchant_id))
    await session.flush()
    return user


async def user_merchants(session: AsyncSession, user_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(UserMerchant.merchant_id)
            .where(UserMerchant.user_id == user_id)
            .order_by(UserMerchant.merchant_id)
        )
    )


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found.")
    return user


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    role: Role | None = None,
    merchant_ids: Sequence[int] | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> User:
    new_role = role or Role(user.role)
    if merchant_ids is not None:
        merchants = await _check_merchants(session, merchant_ids)
    else:
        merchants = await user_merchants(session, user.id)
    _check_scope(new_role, merchants)
    user.role = new_role
    if merchant_ids is not None:
        await session.execute(delete(UserMerchant).where(UserMerchant.user_id == user.id))
        for merchant_id in merchants:
            session.add(UserMerchant(user_id=user.id, merchant_id=merchant_id))
    if password is not None:
        if len(password) < passwords.MIN_PASSWORD_LENGTH:
            raise ValidationFailed(
                f"The password needs at least {passwords.MIN_PASSWORD_LENGTH} characters.",
                details={"field": "password"},
            )
        user.password_hash = passwords.hash_password(password)
    revoke = password is not None or is_active is False or role is not None
    if is_active is not None:
        user.is_active = is_active
    if revoke:
        # A new password, a lower role or a disabled account ends every login at once.
        await revoke_user_sessions(session, user.id, "user_changed")
    await session.flush()
    return user


async def revoke_user_sessions(session: AsyncSession, user_id: int, reason: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


# --- logins -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    refresh_expires_at: datetime
    user: User


async def login(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> IssuedTokens:
    user = await session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        passwords.burn_verify(password)
        raise AuthenticationFailed("unknown email")
    if not passwords.verify_password(user.password_hash, password):
        raise AuthenticationFailed("wrong password")
    if not user.is_active:
        raise AuthenticationFailed("user disabled")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    now = utcnow()
    user.last_login_at = now
    auth = AuthSession(
        user_id=user.id,
        refresh_hash="",
        generation=1,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        ip=ip,
        user_agent=(user_agent or "")[:255] or None,
    )
    session.add(auth)
    await session.flush()
    refresh, refresh_hash = tokens.new_refresh_token(auth.id)
    auth.refresh_hash = refresh_hash
    access, _ = tokens.issue_access_token(settings, user.id, auth.id, now)
    await session.flush()
    return IssuedTokens(access, refresh, auth.expires_at, user)


async def refresh(session: AsyncSession, settings: Settings, refresh_token: str) -> IssuedTokens:
    """Rotate: the presented refresh token is spent and a new pair is issued.

    A spent token presented again means two parties hold it: the login is revoked, so
    both the thief and the owner must log in again (and the owner notices).
    """
    try:
        session_id, secret_hash = tokens.parse_refresh_token(refresh_token)
    except tokens.InvalidToken:
        raise AuthenticationFailed("malformed refresh token") from None
    auth = await session.get(AuthSession, session_id, with_for_update=True)
    now = utcnow()
    if auth is None or auth.revoked_at is not None or auth.expires_at <= now:
        raise AuthenticationFailed("session gone")
    if not tokens.same_hash(auth.refresh_hash, secret_hash):
        auth.revoked_at = now
        auth.revoked_reason = "refresh_reuse"
        await session.flush()
        log.warning("refresh_token_reuse", session_id=auth.id, user_id=auth.user_id)
        raise AuthenticationFailed("refresh token reuse")
    user = await session.get(User, auth.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("user disabled")
    new_token, new_hash = tokens.new_refresh_token(auth.id)
    auth.refresh_hash = new_hash
    auth.generation += 1
    auth.last_used_at = now
    access, _ = tokens.issue_access_token(settings, user.id, auth.id, now)
    await session.flush()
    return IssuedTokens(access, new_token, auth.expires_at, user)


async def logout(session: AsyncSession, session_id: int) -> None:
    auth = await session.get(AuthSession, session_id, with_for_update=True)
    if auth is not None and auth.revoked_at is None:
        auth.revoked_at = utcnow()
        auth.revoked_reason = "logout"
        await session.flush()


# --- API keys ---------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession,
    name: str,
    role: Role,
    merchant_ids: Sequence[int] = (),
    *,
    created_by: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """The row and the key itself: shown to the caller once, never stored."""
    now = utcnow()
    _check_expiry(expires_at, now)
    merchants = await _check_merchants(session, merchant_ids)
    _check_scope(role, merchants)
    key, prefix, key_hash = tokens.new_api_key()
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        role=role,
        created_by_user_id=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    for merchant_id in merchants:
        session.add(ApiKeyMerchant(api_key_id=row.id, merchant_id=merchant_id))
    await session.flush()
    return row, key


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """A key that is expired when made, or set to expire absurdly far ahead, is refused."""
    if expires_at is None:
        return
    latest = now + API_KEY_MAX_LIFETIME
    if expires_at.tzinfo is None or not now < expires_at <= latest:
        raise ValidationFailed(
            f"expires_at must be in the future and at most {API_KEY_MAX_LIFETIME.days} days "
            f"ahead (by {latest:%Y-%m-%d}); leave it out for a key that does not expire.",
            code="invalid_expiry",
            details={
                "field": "expires_at",
                "after": now.isoformat(),
                "not_after": latest.isoformat(),
            },
        )


async def api_key_merchants(session: AsyncSession, key_id: int) -> list[int]:
    return list(
        await session.scalars(
            select(ApiKeyMerchant.merchant_id)
            .where(ApiKeyMerchant.api_key_id == key_id)
            .order_by(ApiKeyMerchant.merchant_id)
        )
    )


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"API key {key_id} not found.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def bootstrap_api_key(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, role: Role = Role.admin
) -> str:
    """A key made straight in the database (the demo, tests, first setup)."""
    async with unit_of_work(sessionmaker) as session:
        _, key = await create_api_key(session, name, role)
        return key


# --- authenticating a request ---------------------------------------------------------------


async def principal_for_access_token(
    session: AsyncSession, settings: Settings, token: str
) -> Principal:
    try:
        claims = tokens.decode_access_token(settings, token)
    except tokens.InvalidToken:
        raise AuthenticationFailed("bad access token") from None
    auth = await session.get(AuthSession, claims.session_id)
    now = utcnow()
    if (
        auth is None
        or auth.user_id != claims.user_id
        or auth.revoked_at is not None
        or auth.expires_at <= now
    ):
        raise AuthenticationFailed("session revoked")
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("user disabled")
    role = Role(user.role)
    merchants = None if role is Role.admin else frozenset(await user_merchants(session, user.id))
    return Principal("user", user.id, user.email, role, merchants, session_id=auth.id)


async def principal_for_api_key(session: AsyncSession, key: str) -> Principal:
    try:
        prefix, key_hash = tokens.parse_api_key(key)
    except tokens.InvalidToken:
        raise AuthenticationFailed("malformed API key") from None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    now = utcnow()
    if row is None or not tokens.same_hash(row.key_hash, key_hash):
        raise AuthenticationFailed("unknown API key")
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationFailed("API key revoked or expired")
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
    role = Role(row.role)
    merchants = None if role is Role.admin else frozenset(await api_key_merchants(session, row.id))
    return Principal("api_key", row.id, f"{tokens.API_KEY_PREFIX}_{row.prefix}", role, merchants)


async def authenticate(session: AsyncSession, settings: Settings, credential: str) -> Principal:
    if credential.startswith(f"{tokens.API_KEY_PREFIX}_"):
        return await principal_for_api_key(session, credential)
    if tokens.looks_like_jwt(credential):
        return await principal_for_access_token(session, settings, credential)
    raise AuthenticationFailed("unrecognized credential")
