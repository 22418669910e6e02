"""``make run`` is ``conexapi demo``: on the embedded default (SQLite, in-process queue, no
MariaDB or Redis) orders flow from the Mercado Libre sandbox to the Siigo sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_invoices_every_order_once_without_services(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env["CONEXAPI_REDIS_URL"] = ""  # make sure nothing points at a real Redis
    proc = subprocess.run(
        [sys.executable, "-m", "conexapi.cli", "demo", "--exit", "--orders", "8"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "one per order: yes" in out
    assert "needs_mapping" not in out.split("Mercado Libre orders → Siigo invoices")[-1]
    assert (tmp_path / "conexapi-demo.db").exists()
