"""A newcomer's first hour with the real ``conexapi`` command: every mistake on the way
is one line saying what to run (non-zero exit, no traceback), and ``conexapi init-env``
writes the secrets a production install needs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dotenv import dotenv_values

from conexapi.kit.crypto import KeyRing, generate_key
from conexapi.settings import MIN_SECRET_KEY_LENGTH, Environment, Settings

pytestmark = pytest.mark.slow

CONEXAPI = Path(sys.executable).with_name("conexapi")


def conexapi(cwd: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """The command as a newcomer runs it: nothing configured but ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(settings)
    return subprocess.run(
        [str(CONEXAPI), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def tables(db: Path) -> set[str]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_create_user_before_migrate_says_to_migrate_first(tmp_path: Path) -> None:
    password = {"CONEXAPI_NEW_USER_PASSWORD": "a long enough password 123"}
    early = conexapi(tmp_path, "create-user", "--email", "ana@tienda.co", **password)
    assert one_line(early) == (
        "create-user: the database has no tables yet: run `conexapi migrate` first"
    )

    assert conexapi(tmp_path, "migrate").returncode == 0
    done = conexapi(tmp_path, "create-user", "--email", "ana@tienda.co", **password)
    assert done.returncode == 0, done.stderr
    assert "ana@tienda.co" in done.stdout


def test_missing_production_secrets_are_one_line_naming_them(tmp_path: Path) -> None:
    line = one_line(conexapi(tmp_path, "migrate", CONEXAPI_ENV="production"))
    assert line.startswith("configuration: insecure default secrets")
    assert "CONEXAPI_SECRET_KEY" in line and "CONEXAPI_ENCRYPTION_KEYS" in line
    assert "conexapi init-env" in line
    assert not (tmp_path / "conexapi.db").exists()


def test_a_malformed_encryption_key_is_refused_before_migrating(tmp_path: Path) -> None:
    bad = "not-a-fernet-key-at-all"
    result = conexapi(tmp_path, "migrate", CONEXAPI_ENCRYPTION_KEYS=f"{generate_key()},{bad}")
    line = one_line(result)
    assert line.startswith("configuration: CONEXAPI_ENCRYPTION_KEYS: key 2 of 2 is not a Fernet")
    assert bad not in result.stdout + result.stderr  # never the key material
    assert not (tmp_path / "conexapi.db").exists()


def test_init_env_writes_fresh_secrets_that_a_production_install_accepts(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / ".env"
    written = conexapi(tmp_path, "init-env")
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # secrets: the owner only
    values = dotenv_values(env_file)
    assert values["CONEXAPI_ENV"] == "production"
    secret_key = values["CONEXAPI_SECRET_KEY"]
    assert secret_key is not None and len(secret_key) >= MIN_SECRET_KEY_LENGTH
    ring = KeyRing.parse(values["CONEXAPI_ENCRYPTION_KEYS"] or "")
    assert ring.decrypt_str(ring.encrypt_str("token")) == "token"
    assert values["MARIADB_PASSWORD"] and values["MARIADB_ROOT_PASSWORD"]

    # The file is all a production install needs to start: settings load from it and
    # migrate runs (on SQLite here, CONEXAPI_DATABASE_URL being left to the operator).
    settings = Settings(_env_file=env_file)
    assert settings.env is Environment.production
    migrated = conexapi(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "users" in tables(tmp_path / "conexapi.db")

    # Run again, it keeps the file: its keys may already encrypt data.
    before = env_file.read_bytes()
    line = one_line(conexapi(tmp_path, "init-env"))
    assert line.startswith("init-env: .env exists") and "--force" in line
    assert env_file.read_bytes() == before

    replaced = conexapi(tmp_path, "init-env", "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert dotenv_values(env_file)["CONEXAPI_SECRET_KEY"] != secret_key
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def _production(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "CONEXAPI_DATABASE_URL": database_url,
        "CONEXAPI_SECRET_KEY": "s" * MIN_SECRET_KEY_LENGTH,
        "CONEXAPI_ENCRYPTION_KEYS": generate_key(),
    }


def test_migrate_to_a_revision_that_does_not_exist_says_so(tmp_path: Path) -> None:
    line = one_line(conexapi(tmp_path, "migrate", "nosuchrev"))
    assert line.startswith("migrate: ") and "nosuchrev" in line
    assert "no argument upgrades to the latest" in line


def test_migrate_with_the_database_out_of_reach_names_it_without_its_password(
    tmp_path: Path,
) -> None:
    url = "mysql+aiomysql://root:hunter2secret@127.0.0.1:1/conexapi"
    line = one_line(conexapi(tmp_path, "migrate", **_production(tmp_path, url)))
    assert line.startswith("migrate: cannot use the database mysql+aiomysql://root:***@")
    assert "hunter2secret" not in line and "CONEXAPI_DATABASE_URL" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "2026-02-30"],  # no such day
        ["--since", "2026-01-01", "--until", "9999-12-31"],  # the day after overflows
        ["--since", "0001-01-01"],  # millions of hourly windows
        ["--since", "2026-01-01", "--pipeline", "99999999999999999999"],  # past any id
    ],
)
def test_backfill_refuses_impossible_ranges_and_ids_in_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    assert conexapi(tmp_path, "migrate").returncode == 0
    if "--pipeline" not in args:
        args = [*args, "--pipeline", "1"]
    result = conexapi(tmp_path, "backfill", *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "backfill" in output or "--pipeline" in output, output
