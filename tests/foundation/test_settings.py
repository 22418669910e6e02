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
    missing = [f"CONEXAPI_{n.upper()}" for n in Settings.model_fields]
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
