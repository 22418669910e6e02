"""A port already taken stops ``api``, ``sandbox`` and ``demo`` at once with one line (no
hang, no traceback); the demo falls back to free ports for the ones it was not told."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from conexapi.kit.resources import Resources
from conexapi.reconcile import metrics
from conexapi.reconcile.metrics import FirstSeenCollector

CONEXAPI = Path(sys.executable).with_name("conexapi")
#: Generous: these commands fail in well under a second when they work.
EXIT_DEADLINE = 120


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update({"CONEXAPI_ENV": "test", **values})
    return env


@contextmanager
def held_port() -> Iterator[int]:
    """A localhost port this test listens on, so nobody else can."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``conexapi`` command to its end; a hang fails the test after EXIT_DEADLINE.

    Output goes to files, not pipes: a child process left behind would keep a pipe open.
    """
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            [str(CONEXAPI), *args],
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, to stop all of it on a hang
        )
        try:
            code = proc.wait(EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"still running after {EXIT_DEADLINE} s: {err.read_text()[-2000:]}")
    return subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.slow
def test_api_exits_at_once_with_one_line_when_its_port_is_taken(
    mariadb_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The production shape the audit ran: MariaDB and Redis configured."""
    with held_port() as port:
        result = _run(
            ["api", "--port", str(port)],
            _env(CONEXAPI_DATABASE_URL=mariadb_url, CONEXAPI_REDIS_URL=redis_url),
            tmp_path,
        )
    assert result.returncode != 0
    line = _one_line(result)
    assert line.startswith(f"api: cannot listen on 127.0.0.1:{port}: address already in use")
    assert "--port" in line


async def test_api_shutdown_ends_when_a_metrics_refresh_turns_the_cancel_into_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What made ``conexapi api`` ignore SIGTERM: stopped while the metrics refresh was
    querying, aiomysql on uvloop (as uvicorn runs it) handed the cancel back as the query's
    error; the refresh loop logged it and slept on, and the shutdown waited for it for
    ever. The refresh here fails that way whenever it is cancelled."""
    in_flight = asyncio.Event()

    class CancelBecomesError(FirstSeenCollector):
        async def refresh(self, res: Resources) -> None:
            in_flight.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                error = "(1146, \"Table 'reconciliation_reports' doesn't exist\")"
                raise RuntimeError(error) from None

    monkeypatch.setattr(metrics, "collector", CancelBecomesError)
    app = SimpleNamespace(state=SimpleNamespace(resources=None))
    async with asyncio.timeout(EXIT_DEADLINE):
        async with metrics.first_seen_metrics(app):
            await in_flight.wait()


@pytest.mark.slow
def test_sandbox_command_exits_at_once_when_a_port_is_taken(tmp_path: Path) -> None:
    with held_port() as port:
        result = _run(["sandbox"], _env(CONEXAPI_SANDBOX_SIIGO_PORT=str(port)), tmp_path)
    assert result.returncode != 0
    assert _one_line(result).startswith(
        f"sandbox: cannot listen on 127.0.0.1:{port}: address already in use"
    )


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--port {}", "--sandbox-port siigo={}"])
def test_demo_exits_at_once_when_a_port_it_was_given_is_taken(option: str, tmp_path: Path) -> None:
    with held_port() as port:
        result = _run(
            ["demo", "--exit", "--orders", "1", *option.format(port).split()], _env(), tmp_path
        )
    assert result.returncode != 0
    line = _one_line(result)
    assert line.startswith(f"demo: cannot listen on 127.0.0.1:{port}: address already in use")
    assert "--port or --sandbox-port" in line


@pytest.mark.slow
def test_demo_takes_free_ports_in_place_of_configured_ones_that_are_taken(
    tmp_path: Path,
) -> None:
    with held_port() as api_port, held_port() as siigo_port:
        result = _run(
            ["demo", "--exit", "--orders", "2"],
            _env(
                CONEXAPI_API_PORT=str(api_port),
                CONEXAPI_SANDBOX_SIIGO_PORT=str(siigo_port),
                CONEXAPI_REDIS_URL="",
            ),
            tmp_path,
        )
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode == 0, output
    assert f"cannot listen on 127.0.0.1:{api_port}: address already in use; api uses port" in (
        output
    )
    assert (
        f"cannot listen on 127.0.0.1:{siigo_port}: address already in use; siigo uses port"
        in output
    )
    assert "one per paid order: yes" in output
