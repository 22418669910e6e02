"""Settings: embedded by default, MariaDB and Redis by URL, no insecure secrets in production."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from conexapi.kit.settings_doc import ROOT, env_example, readme_with_table, settings_docs
from conexapi.settings import INSECURE_SECRET_KEY, Environment, Settings

GOOD_SECRET = "k" * 40
GOOD_FERNET = "x7wXZ6rN0Gg7m2Hq9S4n8bPzv1k5Yc3Qe0TtJuWlA2o="
MARIADB = "mysql+aiomysql://conexapi:pw@db:3306/conexapi"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CONEXAPI_ variables and no .env file, unless a test sets them."""
    for name in list(os.environ):
        if name.startswith("CONEXAPI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_nothing_configured_is_the_embedded_default() -> None:
    settings = Settings()
    assert settings.embedded
    assert settings.is_sqlite and settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None
    assert settings.env is Environment.development


def test_urls_switch_to_mariadb_and_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONEXAPI_DATABASE_URL", MARIADB)
    monkeypatch.setenv("CONEXAPI_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("CONEXAPI_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("CONEXAPI_ENCRYPTION_KEYS", GOOD_FERNET)
    settings = Settings()
    assert not settings.embedded and not settings.is_sqlite
    assert settings.database_url == MARIADB
    assert settings.redis_url == "redis://cache:6379/0"


@pytest.mark.parametrize(
    "env",
    [
        {"CONEXAPI_DATABASE_URL": MARIADB},
        {"CONEXAPI_REDIS_URL": "redis://cache:6379/0"},
        {"CONEXAPI_ENV": "production"},
    ],
    ids=["mariadb", "redis", "production-on-sqlite"],
)
def test_insecure_default_secrets_are_refused_outside_embedded(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert "CONEXAPI_SECRET_KEY" in message and "CONEXAPI_ENCRYPTION_KEYS" in message
    # The value itself never appears in the error.
    assert INSECURE_SECRET_KEY not in message


def test_a_short_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONEXAPI_DATABASE_URL", MARIADB)
    monkeypatch.setenv("CONEXAPI_SECRET_KEY", "short")
    monkeypatch.setenv("CONEXAPI_ENCRYPTION_KEYS", GOOD_FERNET)
    with pytest.raises(ValidationError, match="CONEXAPI_SECRET_KEY"):
        Settings()
    monkeypatch.setenv("CONEXAPI_SECRET_KEY", GOOD_SECRET)
    assert Settings().secret_key.get_secret_value() == GOOD_SECRET


def test_the_test_environment_may_use_services_with_development_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONEXAPI_ENV", "test")
    monkeypatch.setenv("CONEXAPI_DATABASE_URL", MARIADB)
    assert not Settings().embedded


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CONEXAPI_API_PORT=9123\nCONEXAPI_LOG_LEVEL=DEBUG\n")
    settings = Settings()
    assert (settings.api_port, settings.log_level) == (9123, "DEBUG")
    monkeypatch.setenv("CONEXAPI_API_PORT", "9124")  # the environment wins over the file
    assert Settings().api_port == 9124


#: Every connector variable operators' .env files use, with its default.
CONNECTOR_VARIABLES = {
    "CONEXAPI_MERCADOLIBRE_API_URL": ("mercadolibre", "api_url", "https://api.mercadolibre.com"),
    "CONEXAPI_MERCADOLIBRE_AUTH_URL": (
        "mercadolibre",
        "auth_url",
        "https://auth.mercadolibre.com.co",
    ),
    "CONEXAPI_MERCADOLIBRE_CLIENT_ID": ("mercadolibre", "client_id", ""),
    "CONEXAPI_MERCADOLIBRE_REDIRECT_URI": (
        "mercadolibre",
        "redirect_uri",
        "http://127.0.0.1:8000/oauth/mercadolibre/callback",
    ),
    "CONEXAPI_MERCADOLIBRE_NOTIFICATION_IPS": ("mercadolibre", "notification_ips", ""),
    "CONEXAPI_MERCADOLIBRE_REQUESTS_PER_MINUTE": ("mercadolibre", "requests_per_minute", 100),
    "CONEXAPI_SANDBOX_MERCADOLIBRE_PORT": ("mercadolibre", "sandbox_port", 8101),
    "CONEXAPI_SIIGO_API_URL": ("siigo", "api_url", "https://api.siigo.com"),
    "CONEXAPI_SIIGO_PARTNER_ID": ("siigo", "partner_id", "ConexAPI"),
    "CONEXAPI_SIIGO_REQUESTS_PER_MINUTE": ("siigo", "requests_per_minute", 100),
    "CONEXAPI_SIIGO_RATE_WINDOW_SECONDS": ("siigo", "rate_window_seconds", 60.0),
    "CONEXAPI_SANDBOX_SIIGO_PORT": ("siigo", "sandbox_port", 8102),
}


def test_connector_settings_keep_their_variables_and_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = Settings().connectors
    for variable, (connector, field, default) in CONNECTOR_VARIABLES.items():
        assert getattr(defaults[connector], field) == default, variable
    secrets = {"CONEXAPI_MERCADOLIBRE_CLIENT_SECRET", "CONEXAPI_MERCADOLIBRE_WEBHOOK_TOKEN"}
    documented = {doc.env for doc in settings_docs()}
    assert set(CONNECTOR_VARIABLES) | secrets <= documented
    # From the .env file, and the environment over it, each by its own name.
    (tmp_path / ".env").write_text(
        "CONEXAPI_SIIGO_REQUESTS_PER_MINUTE=7\nCONEXAPI_SANDBOX_SIIGO_PORT=9102\n"
        "CONEXAPI_MERCADOLIBRE_CLIENT_SECRET=from-file\nCONEXAPI_SIIGO_API_URL=http://file\n"
    )
    monkeypatch.setenv("CONEXAPI_SIIGO_API_URL", "http://env")
    monkeypatch.setenv("CONEXAPI_MERCADOLIBRE_CLIENT_ID", "4242")
    read = Settings().connectors
    assert (read["siigo"].requests_per_minute, read["siigo"].sandbox_port) == (7, 9102)
    assert read["siigo"].api_url == "http://env"
    assert read["mercadolibre"].client_id == "4242"
    secret = read["mercadolibre"].client_secret
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == "from-file"
    assert "from-file" not in repr(read)
    # Without the file, only the environment; given in code, over both.
    assert Settings(_env_file=None).connectors["siigo"].requests_per_minute == 100
    given = Settings(connectors={"siigo": {"requests_per_minute": 3, "sandbox_port": 1}})
    assert (
        given.connectors["siigo"].requests_per_minute,
        given.connectors["siigo"].sandbox_port,
    ) == (3, 1)
    assert given.connectors["siigo"].api_url == "http://env"


def test_a_bad_connector_setting_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from conexapi.cli import _settings_errors

    monkeypatch.setenv("CONEXAPI_SIIGO_REQUESTS_PER_MINUTE", "many")
    monkeypatch.setenv("CONEXAPI_SANDBOX_MERCADOLIBRE_PORT", "high")
    with pytest.raises(ValidationError) as info:
        Settings()
    message = _settings_errors(info.value)
    assert "CONEXAPI_SIIGO_REQUESTS_PER_MINUTE: " in message
    assert "CONEXAPI_SANDBOX_MERCADOLIBRE_PORT: " in message
    with pytest.raises(ValidationError, match="siigo has no setting named request_per_minute"):
        Settings(connectors={"siigo": {"request_per_minute": 1}})
    with pytest.raises(ValidationError, match="no connector named nope"):
        Settings(connectors={"nope": {}})


def test_secrets_are_not_revealed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONEXAPI_SECRET_KEY", GOOD_SECRET)
    settings = Settings()
    assert GOOD_SECRET not in repr(settings)
    assert GOOD_SECRET not in settings.model_dump_json()

    sensitive = [
        n for n in Settings.model_fields if any(w in n for w in ("secret", "key", "token"))
    ]
    sensitive = [n for n in sensitive if not n.endswith(("_seconds", "_ms"))]
    assert {n: Settings.model_fields[n].annotation for n in sensitive} == dict.fromkeys(
        sensitive, SecretStr
    )


def test_every_setting_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [f"CONEXAPI_{n.upper()}" for n in Settings.model_fields if n != "connectors"]
    for own in Settings(_env_file=None).connectors.values():
        missing += [type(own).env_name(n) for n in type(own).model_fields]
    missing = [name for name in missing if f"{name}=" not in text]
    assert missing == [], "add them to .env.example: run `make docs`"
    assert text == env_example(), ".env.example is stale: run `make docs`"


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == readme_with_table(readme), "README table is stale: run `make docs`"
    for doc in settings_docs():
        assert f"`{doc.env}`" in readme


def test_every_setting_is_described() -> None:
    assert [d.env for d in settings_docs() if not d.description] == []
