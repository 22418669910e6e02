"""Settings from the environment (prefix ``CONEXAPI_``) and an optional ``.env`` file.

With nothing configured the service runs on the embedded default: a SQLite file and
no Redis (jobs go through an in-process queue). Pointing ``CONEXAPI_DATABASE_URL`` at
MariaDB and setting ``CONEXAPI_REDIS_URL`` switches to the production shape.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from ipaddress import ip_network
from typing import Self

from cryptography.fernet import Fernet
from limits import parse as parse_limit
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Development-only secrets; accepted only when the service is embedded.
INSECURE_SECRET_KEY = "insecure-embedded-secret-key-change-me"  # noqa: S105
INSECURE_ENCRYPTION_KEY = "ZW1iZWRkZWQtb25seS1rZXktMzItYnl0ZXMtbG9uZyE="
MIN_SECRET_KEY_LENGTH = 32
FRESH_SECRETS_HINT = "`conexapi init-env` writes a .env with fresh ones"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class LogFormat(StrEnum):
    auto = "auto"
    json = "json"
    console = "console"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONEXAPI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    #: development, test or production. Production logs JSON and never accepts the
    #: development secrets, even on SQLite.
    env: Environment = Environment.development
    #: SQLAlchemy URL: ``sqlite+aiosqlite:///./conexapi.db`` (embedded) or
    #: ``mysql+aiomysql://user:password@host:3306/conexapi`` (MariaDB).
    database_url: str = "sqlite+aiosqlite:///./conexapi.db"
    #: ``redis://host:6379/0``: Celery broker, locks and rate limits. Unset: in-process
    #: queue (embedded mode).
    redis_url: str | None = None
    #: Seconds a pooled MariaDB connection lives; below the server's wait_timeout (28800 s).
    db_pool_recycle: int = 1800
    #: A pooled MariaDB connection idle for longer than this is pinged before use (and
    #: replaced if the server is gone); one in steady use is not, which saves a round trip
    #: per transaction. 0 pings at every checkout.
    db_ping_idle_seconds: float = 10.0
    #: Pooled MariaDB connections per process, and extra ones allowed under load.
    db_pool_size: int = 10
    db_max_overflow: int = 10
    #: Log every SQL statement (debugging only).
    db_echo: bool = False
    #: How long a SQLite writer waits for the lock before failing.
    sqlite_busy_timeout_ms: int = 15000

    #: Signs sessions and OAuth state. Required (32+ characters) outside the embedded mode.
    secret_key: SecretStr = SecretStr(INSECURE_SECRET_KEY)
    #: Comma-separated Fernet keys, newest first; older keys stay readable for rotation.
    encryption_keys: SecretStr = SecretStr(INSECURE_ENCRYPTION_KEY)

    #: Where ``conexapi api`` listens.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: The URL the marketplaces and browsers reach this service at (webhooks, OAuth).
    public_url: str = "http://127.0.0.1:8000"
    #: Larger request bodies are refused with 413, declared or streamed.
    max_body_bytes: int = 1_048_576
    #: A request's headers must have arrived this many seconds after the connection opened
    #: (or the previous response ended); a slower client gets a 408 and is disconnected.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    #: A request's body must have arrived this many seconds after its headers (the largest
    #: body allowed then needs about 35 KB/s); a slower client gets a 408 and is dropped.
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Open client connections per API process; more are answered 503 at once. Lowered to
    #: fit the open-file limit (``ulimit -n``) when that is too low for it.
    http_max_connections: int = Field(default=800, gt=0)
    #: Lowest level logged: DEBUG, INFO, WARNING or ERROR.
    log_level: str = "INFO"
    #: auto (JSON in production, readable otherwise), json or console.
    log_format: LogFormat = LogFormat.auto
    #: When set, ``/metrics`` (the API's and each worker's) answers only requests sent with
    #: ``Authorization: Bearer <this token>``; empty: open to whoever reaches the port.
    metrics_token: SecretStr = SecretStr("")
    #: Where each ``conexapi worker`` serves the metrics of its processes (``/metrics``)
    #: for Prometheus to scrape; port 0 serves none.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9191

    #: Child processes per ``conexapi worker``.
    worker_concurrency: int = 2
    #: Runs one worker process executes at once on its event loop (they mostly wait on
    #: the marketplace and the ERP).
    worker_runs_per_process: int = 20
    #: For how long one job, once its own events are started, keeps filling its free run
    #: slots with the oldest events still waiting in the inbox (0: only its own). Keeps
    #: every process busy however the notifications were grouped into jobs.
    worker_take_more_seconds: float = 30.0
    #: Redis visibility timeout; no countdown may exceed it (long waits live in the database).
    broker_visibility_timeout: int = 3600
    #: How often beat runs the sweeper (requeues events and stalled runs).
    sweeper_interval_seconds: float = 30.0
    #: A running run whose heartbeat (on the database's clock) is older than this is taken
    #: over by another worker. A run beats every sixth of it (7.5 s), so a live one would
    #: have to miss six beats in a row, a 45 s stall, far beyond a GC pause or the delays
    #: of a loaded machine; a dead worker's runs are taken over at the sweeper's next pass
    #: after that, within about a minute (75 s at most with the default interval).
    run_heartbeat_timeout_seconds: float = 45.0
    #: An inbox event whose job has not started after this long is sent again: Redis may
    #: have lost it (a restart without persistence, a failover). A second copy of a job that
    #: was only slow finds its events taken and does nothing. A lost job is found within
    #: this plus the sweeper's interval.
    queued_event_requeue_seconds: float = 120.0
    #: The same for a queued run whose job has not started; its claim in the database
    #: keeps a second delivery harmless.
    queued_run_requeue_seconds: float = 120.0
    #: First back-off after a transient failure; doubles per attempt (with jitter), max 1 h.
    retry_base_seconds: float = 30.0
    #: Timeout of calls to marketplaces and ERPs, except the creation of ERP documents.
    http_timeout_seconds: float = 60.0
    #: Timeout of a call that creates an ERP document (an invoice). Siigo advises 120 s or
    #: more; a timeout is safe to retry (same idempotency key), so a shorter one only costs
    #: a retry.
    erp_document_timeout_seconds: float = 120.0

    #: How often beat reconciles each pipeline against the marketplace's order search.
    reconcile_interval_seconds: float = 300.0
    #: Each reconcile window starts this far before the cursor, so an order the search
    #: showed late is still read.
    reconcile_lookback_seconds: float = 900.0
    #: A window ends this long before now: the marketplace's search trails its updates.
    reconcile_lag_seconds: float = 60.0
    #: Longest window read in one go; a cursor far behind catches up window by window.
    reconcile_max_window_seconds: float = 86400.0
    #: How often beat rebuilds the reports of yesterday and today (Colombia).
    report_interval_seconds: float = 3600.0
    #: An invoice dated up to this many days after a sale counts for it in the report.
    report_invoice_slack_days: int = 3
    #: How often beat refreshes marketplace tokens nearing expiry.
    token_refresh_interval_seconds: float = 300.0
    #: How often beat prunes old inbox payloads.
    prune_interval_seconds: float = 3600.0
    #: Inbox payloads (they hold buyer data) are erased once their event is this old and
    #: processed; the event row stays.
    inbox_payload_retention_days: int = 30

    #: Mercado Libre API and consent (OAuth) base URLs; point them at the sandbox to try.
    mercadolibre_api_url: str = "https://api.mercadolibre.com"
    mercadolibre_auth_url: str = "https://auth.mercadolibre.com.co"
    #: The application's credentials from the Mercado Libre developer console.
    mercadolibre_client_id: str = ""
    mercadolibre_client_secret: SecretStr = SecretStr("")
    #: Must match the redirect URI registered for the application.
    mercadolibre_redirect_uri: str = "http://127.0.0.1:8000/oauth/mercadolibre/callback"
    #: Comma-separated source IPs allowed to post notifications; empty disables the check.
    mercadolibre_notification_ips: str = ""
    #: Optional shared secret expected as ``?token=`` on the notification URL.
    mercadolibre_webhook_token: SecretStr = SecretStr("")
    #: Requests per minute to Mercado Libre for the whole application (every seller),
    #: shared by every worker. Mercado Libre publishes no limit; 100 is the one figure it
    #: declares (for an orders route).
    mercadolibre_requests_per_minute: int = 100

    #: Comma-separated origins (scheme://host[:port]) a consent may redirect back to, besides
    #: the origin of ``public_url``.
    oauth_allowed_return_origins: str = ""
    #: How long a consent started here may take to come back.
    oauth_state_ttl_seconds: int = 600
    #: An access token this close to its expiry counts as expired (clock skew, slow calls).
    token_refresh_margin_seconds: int = 60
    #: The periodic job refreshes access tokens that expire within this horizon.
    token_refresh_ahead_seconds: int = 900
    #: After a failed refresh the periodic job leaves the connection alone this long.
    token_refresh_cooldown_seconds: int = 600

    #: Siigo Nube API base URL; point it at the sandbox to try.
    siigo_api_url: str = "https://api.siigo.com"
    #: Sent as the ``Partner-Id`` header Siigo requires on every call.
    siigo_partner_id: str = "ConexAPI"
    #: Requests per window for a Siigo production company, shared by every worker (Siigo
    #: allows 100/min). A company linked in test mode gets Siigo's 10; a connection can set
    #: its own (``requests_per_minute`` on the connections API).
    siigo_requests_per_minute: int = 100
    #: The window Siigo's limits count over (shorter only in tests).
    siigo_rate_window_seconds: float = 60.0

    #: Lifetime of the ops API's access tokens (JWT); short, since only a logout or a
    #: disabled user revokes one before it expires.
    access_token_ttl_seconds: int = 900
    #: Lifetime of a login (its refresh token rotates on every use within it).
    refresh_token_ttl_seconds: int = 1_209_600
    #: Password logins one client address may try on one account (``limits`` notation);
    #: a success starts the count again. Other addresses are not affected.
    login_rate_limit: str = "10/15minutes"
    #: Password logins one client address may try, whatever the account.
    login_address_rate_limit: str = "50/15minutes"
    #: Failed password logins on one account, from all addresses, past which the account
    #: is only throttled (never locked): each address gets one try per ``login_rate_limit``
    #: window.
    login_account_rate_limit: str = "100/hour"
    #: Failed tokens, API keys and refresh tokens from one client address past which a
    #: failure gets 429 instead of 401. A valid one is never refused.
    auth_failure_rate_limit: str = "30/minute"
    #: Comma-separated addresses or networks (CIDR) of reverse proxies whose
    #: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed, read right to left
    #: through trusted hops only. Empty: none; the client address is the connection's peer.
    trusted_proxies: str = ""
    #: How long the answer to a request sent with an ``Idempotency-Key`` is kept.
    idempotency_ttl_seconds: int = 86_400

    #: Where ``conexapi sandbox`` serves the simulated Mercado Libre and Siigo.
    sandbox_host: str = "127.0.0.1"
    sandbox_mercadolibre_port: int = 8101
    sandbox_siigo_port: int = 8102

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when running without external services (SQLite, no Redis)."""
        return self.is_sqlite and not self.redis_url

    @property
    def json_logs(self) -> bool:
        if self.log_format is LogFormat.auto:
            return self.env is Environment.production
        return self.log_format is LogFormat.json

    @field_validator(
        "login_rate_limit",
        "login_address_rate_limit",
        "login_account_rate_limit",
        "auth_failure_rate_limit",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit; write it like 10/15minutes or 30/minute"
            ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            try:
                if item.strip():
                    ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{item.strip()!r} is not an IP address or network; "
                    "write e.g. 10.0.0.0/8,192.168.1.10"
                ) from None
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        # Checked here, not when the first credential is stored: a bad key would
        # otherwise pass `conexapi migrate` and fail later, in the middle of a consent.
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError(f"no key given; {FRESH_SECRETS_HINT}")
        for number, key in enumerate(keys, 1):
            try:
                Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError):
                # Which key, never the key itself.
                raise ValueError(
                    f"key {number} of {len(keys)} is not a Fernet key (44 characters of "
                    f"url-safe base64); {FRESH_SECRETS_HINT}"
                ) from None
        return value

    @model_validator(mode="after")
    def _refuse_insecure_defaults(self) -> Self:
        if self.env is Environment.test:
            return self
        if self.embedded and self.env is not Environment.production:
            return self
        insecure = []
        secret = self.secret_key.get_secret_value()
        if secret == INSECURE_SECRET_KEY or len(secret) < MIN_SECRET_KEY_LENGTH:
            insecure.append(f"CONEXAPI_SECRET_KEY (at least {MIN_SECRET_KEY_LENGTH} characters)")
        if INSECURE_ENCRYPTION_KEY in self.encryption_keys.get_secret_value():
            insecure.append("CONEXAPI_ENCRYPTION_KEYS")
        if insecure:
            raise ValueError(
                "insecure default secrets outside the embedded mode; set "
                + ", ".join(insecure)
                + f" ({FRESH_SECRETS_HINT})"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()


__all__ = ["Environment", "LogFormat", "Settings", "get_settings"]
