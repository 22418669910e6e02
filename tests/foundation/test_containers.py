"""The Dockerfile and docker-compose.yml are wired as intended (read, not run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from conexapi.cli import cli
from conexapi.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (instruction, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            out.append([])
        out[-1].append((instruction.upper(), args.strip()))
    return out


def assert_cli_accepts(argv: list[str]) -> None:
    """The ``conexapi`` command line parses ``argv`` (a command with valid options)."""
    commands = typer.main.get_command(cli).commands  # type: ignore[attr-defined]
    name, *args = argv
    assert name in commands, f"`conexapi {name}` does not exist"
    command = commands[name]
    with command.make_context(f"conexapi {name}", list(args)):
        pass


def test_dockerfile_is_multi_stage_with_wheels_built_apart(
    stages: list[list[tuple[str, str]]],
) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert re.search(r"\bAS build\b", build[0][1], re.IGNORECASE)
    assert any(i == "RUN" and "pip wheel" in a for i, a in build)
    assert "slim" in runtime[0][1]
    assert any(i == "COPY" and a.startswith("--from=build") for i, a in runtime)
    installs = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert installs and all("--no-index" in a for a in installs)


def test_runtime_stage_runs_as_a_non_root_user_with_a_healthcheck(
    stages: list[list[tuple[str, str]]],
) -> None:
    runtime = stages[-1]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [a for i, a in runtime if i == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert "CMD" in healthchecks[0]


def test_image_entrypoint_is_the_cli(stages: list[list[tuple[str, str]]]) -> None:
    runtime = dict(stages[-1])
    assert yaml.safe_load(runtime["ENTRYPOINT"]) == ["conexapi"]
    assert_cli_accepts(yaml.safe_load(runtime["CMD"]))


def test_compose_has_every_service_on_one_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mariadb", "redis", *APP_SERVICES, "prometheus"}
    assert list(compose["networks"]) == ["conexapi"]
    for name, service in services.items():
        assert service.get("networks") == ["conexapi"], name


def test_mariadb_and_redis_have_healthchecks_and_mariadb_a_volume(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("mariadb", "redis"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    volumes = services["mariadb"]["volumes"]
    assert any(v.split(":")[1] == "/var/lib/mysql" for v in volumes)
    assert volumes[0].split(":")[0] in compose["volumes"]


def test_startup_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"mariadb": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "mariadb": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


def test_app_services_run_existing_cli_commands(compose: dict[str, Any]) -> None:
    commands = {name: compose["services"][name]["command"] for name in APP_SERVICES}
    assert [argv[0] for argv in commands.values()] == list(APP_SERVICES)
    for argv in commands.values():
        if isinstance(argv, str):
            argv = shlex.split(argv)
        assert_cli_accepts(argv)


def test_cli_check_rejects_what_does_not_exist() -> None:
    with pytest.raises(AssertionError):
        assert_cli_accepts(["nonexistent"])
    with pytest.raises(Exception, match="No such option"):
        assert_cli_accepts(["beat", "--no-such-option"])


def test_app_services_take_their_configuration_from_the_environment(
    compose: dict[str, Any],
) -> None:
    fields = {f"CONEXAPI_{name.upper()}" for name in Settings.model_fields}
    for name in APP_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        assert set(env) <= fields, set(env) - fields
        assert "@mariadb:3306/" in env["CONEXAPI_DATABASE_URL"]
        assert env["CONEXAPI_DATABASE_URL"].startswith("mysql+aiomysql://")
        assert env["CONEXAPI_REDIS_URL"].startswith("redis://redis:6379")
        assert env["CONEXAPI_ENV"] == "production"
        # Secrets come from the operator's environment, never from this file.
        for secret in ("CONEXAPI_SECRET_KEY", "CONEXAPI_ENCRYPTION_KEYS"):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[secret]), secret
        assert "${MARIADB_PASSWORD:?" in env["CONEXAPI_DATABASE_URL"]
        assert service["image"] == "conexapi:latest"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".env", "*.db"} <= ignored
    assert "README.md" not in ignored  # pyproject's readme; the build needs it
