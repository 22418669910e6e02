"""The worker's metrics endpoint: refused loudly when it cannot be served as configured,
and scraped, with the API's, by the Prometheus configuration the compose file runs.

That a real worker serves the runs its children finish is shown end to end in
``tests/e2e/test_metrics.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import prometheus_client  # noqa: F401  (as in any process that made metrics already)
import pytest
import yaml

from conexapi.settings import Settings
from workers.metrics import open_worker_metrics

CONEXAPI = Path(sys.executable).with_name("conexapi")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_worker_exits_at_once_when_its_metrics_port_is_taken(
    tmp_path: Path, sqlite_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
        env.update(
            CONEXAPI_ENV="test",
            CONEXAPI_DATABASE_URL=sqlite_url,
            # Nothing listens there: the worker must give up before it tries the broker.
            CONEXAPI_REDIS_URL="redis://127.0.0.1:9/0",
            CONEXAPI_WORKER_METRICS_PORT=str(port),
        )
        result = subprocess.run(
            [str(CONEXAPI), "worker", "--pool", "solo"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "CONEXAPI_WORKER_METRICS_PORT" in lines[0]


def test_metrics_made_before_the_switch_are_refused(
    settings_factory: Callable[..., Settings],
) -> None:
    # Metrics made in this process live in its memory, where no scrape of the process
    # group would see them: better no start than totals that miss them.
    with pytest.raises(RuntimeError, match="before prometheus_client"):
        open_worker_metrics(settings_factory(worker_metrics_port=1))
    assert open_worker_metrics(settings_factory(worker_metrics_port=0)) is None


def test_prometheus_scrapes_every_api_and_worker_replica() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    api_port = int(compose["api"]["command"][compose["api"]["command"].index("--port") + 1])
    worker_port = Settings.model_fields["worker_metrics_port"].default
    # One target per container of the service (DNS A records), whatever the replica count.
    assert jobs["conexapi-api"]["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": api_port}
    ]
    assert jobs["conexapi-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": worker_port}
    ]
    assert {job.get("metrics_path", "/metrics") for job in jobs.values()} == {"/metrics"}
    # Compose runs that file, and the image lets a worker be reached from the network.
    assert (
        "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (compose["prometheus"]["volumes"])
    )
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "CONEXAPI_WORKER_METRICS_HOST=0.0.0.0" in dockerfile
    assert f"CONEXAPI_WORKER_METRICS_PORT={worker_port}" in dockerfile
