"""Settings from the environment (prefix ``CONEXAPI_``) and an optional ``.env`` file.

With nothing configured the service runs on the embedded default: a SQLite file and
no Redis (jobs go through an in-process queue). Pointing ``CONEXAPI_DATABASE_URL`` at
MariaDB and setting ``CONEXAPI_REDIS_URL`` switches to the production shape.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from ipaddress import ip_network
from typing import Any, Self, TypeVar, cast

from cryptography.fernet import Fernet
from limits import parse as parse_limit
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connectors.base import ConnectorSettings

C = TypeVar("C", bound=ConnectorSettings)

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

    #: Where ``conexapi sandbox`` serves the connectors' simulators (each connector's
    #: settings name its port).
    sandbox_host: str = "127.0.0.1"

    #: Every installed connector's own settings by connector name (its
    #: :class:`~connectors.base.ConnectorSettings` model), read from the connector's own
    #: variables. Given in code (tests, an embedding program) as ``{name: {field: value}}``,
    #: over what the environment says; not a variable of its own.
    connectors: dict[str, ConnectorSettings] = Field(default_factory=dict, validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = getattr(dotenv_settings, "env_file", None)
        connectors = _ConnectorsSource(settings_cls, env_file)
        return init_settings, env_settings, dotenv_settings, connectors, file_secret_settings

    @field_validator("connectors", mode="before")
    @classmethod
    def _connector_settings(cls, value: Any) -> dict[str, ConnectorSettings]:
        from connectors.registry import all_connectors

        given = dict(value or {})
        specs = all_connectors()
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise ValueError(f"no connector named {', '.join(unknown)} is installed")
        out: dict[str, ConnectorSettings] = {}
        errors: list[InitErrorDetails] = []
        for name, spec in sorted(specs.items()):
            if spec.settings is None:
                continue
            values = given.get(name) or {}
            if isinstance(values, spec.settings):
                out[name] = values
                continue
            if isinstance(values, BaseModel):
                values = values.model_dump(exclude_unset=True)
            model = spec.settings
            strange = sorted(str(k) for k in values if k not in model.model_fields)
            if strange:
                raise ValueError(f"{name} has no setting named {', '.join(strange)}")
            try:
                # Not the .env file again: the connectors source read the one in use (none
                # when the product's was turned off) and its values are in ``values``.
                out[name] = model(
                    _env_file=None, **{model.field_for(k): v for k, v in values.items()}
                )
            except ValidationError as exc:
                # Every connector's mistakes at once, each under its connector's name.
                errors += [
                    cast(
                        "InitErrorDetails",
                        {
                            "type": error["type"],
                            "loc": (name, *error["loc"]),
                            "input": error["input"],
                            **({"ctx": error["ctx"]} if "ctx" in error else {}),
                        },
                    )
                    for error in exc.errors()
                ]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return out

    def connector(self, name: str, model: type[C]) -> C:
        """Connector ``name``'s own settings, an instance of ``model`` (its settings model)."""
        found = self.connectors.get(name)
        if not isinstance(found, model):
            raise TypeError(f"connector {name!r} has no settings of type {model.__name__}")
        return found

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


class _ConnectorsSource(PydanticBaseSettingsSource):
    """Each installed connector's settings as its own model reads them from the environment
    and from the same ``.env`` file as the product's (none when the product's was turned
    off), under its own prefix: the variables keep their names."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: Any) -> None:
        super().__init__(settings_cls)
        self._env_file = env_file

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the one field itself

    def __call__(self) -> dict[str, Any]:
        from connectors.registry import all_connectors

        found: dict[str, Any] = {}
        for name, spec in all_connectors().items():
            if spec.settings is None:
                continue
            model = spec.settings
            env = EnvSettingsSource(model)()
            dotenv = (
                DotEnvSettingsSource(model, env_file=self._env_file)() if self._env_file else {}
            )
            # The environment over the file, as for the product's own settings; by field
            # name, as a test or a program gives them in code (which wins over both).
            names = {model.field_for(f).lower(): f for f in model.model_fields}
            # Only the model's own: the file's other lines are the product's.
            found[name] = {
                names[k.lower()]: v for k, v in {**dotenv, **env}.items() if k.lower() in names
            }
        return {"connectors": found}


def env_variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's ``loc`` is about."""
    from connectors.registry import all_connectors

    parts = [str(part) for part in loc]
    if len(parts) >= 3 and parts[0] == "connectors":
        spec = all_connectors().get(parts[1])
        model = spec.settings if spec is not None else None
        if model is not None:
            field = next(
                (f for f in model.model_fields if parts[2] in (f, model.field_for(f))), None
            )
            if field is not None:
                return model.env_name(field)
    return f"CONEXAPI_{'_'.join(parts).upper()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


__all__ = ["Environment", "LogFormat", "Settings", "env_variable", "get_settings"]
