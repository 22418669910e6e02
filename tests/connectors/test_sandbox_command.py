"""``conexapi sandbox`` serves every installed connector's simulator and says how to use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conexapi.serving import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sandbox_command_serves_both_simulators(tmp_path: Path) -> None:
    ml_port, siigo_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(
        CONEXAPI_SANDBOX_MERCADOLIBRE_PORT=str(ml_port),
        CONEXAPI_SANDBOX_SIIGO_PORT=str(siigo_port),
    )
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conexapi.cli", "sandbox"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        urls = {"mercadolibre": ml_port, "siigo": siigo_port}
        deadline = time.monotonic() + 60
        up: dict[str, dict[str, str]] = {}
        while len(up) < 2:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            for name, port in urls.items():
                try:
                    resp = httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1)
                    up[name] = resp.json()
                except httpx.HTTPError:
                    time.sleep(0.1)
        # Each answers as its own service: Siigo wants a Partner-Id, Mercado Libre a token.
        siigo = httpx.get(f"http://127.0.0.1:{siigo_port}/v1/products")
        assert siigo.status_code in (400, 401)
        ml = httpx.get(f"http://127.0.0.1:{ml_port}/users/me")
        assert ml.status_code == 401
        expected = [
            f"export CONEXAPI_SIIGO_API_URL=http://127.0.0.1:{siigo_port}",
            f"export CONEXAPI_MERCADOLIBRE_API_URL=http://127.0.0.1:{ml_port}",
        ]
        # Printed once both serve; wait for it to reach the file rather than for a while.
        deadline = time.monotonic() + 30
        while not all(line in out.read_text() for line in expected):
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0
