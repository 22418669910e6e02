"""Each ``conexapi worker`` serves the metrics of its whole process group on a port of its own.

A worker's counters (``conexapi_sync_runs_total``, webhook ingestion, token refreshes) are
counted in the Celery child processes that do the work. The API's ``/metrics`` is another
process, usually on another host, and never saw them. Production runs N API replicas and N
workers on any number of hosts (docker-compose.yml), which rules out:

- prometheus_client's multiprocess mode as the only mechanism (a directory the API reads):
  it is shared through a file system, so it works on one host only;
- pushing to a Pushgateway: a service more to run, and a worker's last values outlive it
  there, which Prometheus advises against for long-lived processes;
- counting in Redis for the API to serve: a home-made metrics store, and every API replica
  would serve the same global totals, summed N times by any query across replicas.

So each ``conexapi worker`` is a scrape target like any other long-lived service. Its main
process serves ``/metrics`` on ``CONEXAPI_WORKER_METRICS_PORT``; its forked children write
their values to files in a directory private to this worker (the multiprocess mode, used
as intended: one host, one process tree) that the main process sums at each scrape.
Prometheus finds every worker replica by DNS (``deploy/prometheus.yml``). The directory
is made fresh at each start, as the library requires, so a restarted worker's counters
start at zero, which ``rate()`` reads as the reset it is; a child that Celery replaces
leaves its file behind, so what it counted stays in the totals.

In the embedded mode the worker is a thread of the API process: its counters are the
API's own and the API's ``/metrics`` serves them; nothing here runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from conexapi.kit.context import clean_request_id
from conexapi.kit.errors import envelope
from conexapi.kit.security import DATA_POLICY, METRICS_REFUSED, STATIC_HEADERS, bearer_matches
from conexapi.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: prometheus_client reads it when it is first imported, and only then.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerMetricsError(Exception):
    """The metrics endpoint cannot be served as configured (the message says what to do)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


def _guarded(app: WSGIApplication, token: str) -> WSGIApplication:
    """``app`` answering only with the token when one is set, and with the security headers."""
    extra = [*STATIC_HEADERS, ("Content-Security-Policy", DATA_POLICY)]

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rid = clean_request_id(environ.get("HTTP_X_REQUEST_ID"))

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, *extra, ("X-Request-ID", rid)]
            if token:
                headers.append(("Cache-Control", "no-store"))
            return start_response(status, headers, exc_info)

        if token and not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            refused = {**envelope("unauthorized", METRICS_REFUSED), "request_id": rid}
            body = json.dumps(refused, separators=(",", ":")).encode()
            start(
                "401 Unauthorized",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start)

    return wsgi


@dataclass
class WorkerMetrics:
    """The bound (not yet serving) endpoint and the directory the processes write to."""

    server: WSGIServer
    directory: str
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def serve(self) -> None:
        """Answer scrapes from a daemon thread of this (the main) process; once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.server.serve_forever, name="conexapi-worker-metrics", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def open_worker_metrics(settings: Settings) -> WorkerMetrics | None:
    """Bind the endpoint and switch this process tree to per-process metric files.

    Must run before anything imports ``prometheus_client``: a metric made before would
    keep its values in this process's memory, out of every child's reach and out of the
    totals. None when ``worker_metrics_port`` is 0.
    """
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    if port == 0:
        return None
    if "prometheus_client" in sys.modules:
        raise RuntimeError("open_worker_metrics must run before prometheus_client is imported")
    directory = tempfile.mkdtemp(prefix="conexapi-worker-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    app = _guarded(make_wsgi_app(registry), settings.metrics_token.get_secret_value())
    try:
        # IPv4 or IPv6, whichever the host names (as prometheus_client's own server does).
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)

        class _Server(ThreadingWSGIServer):
            address_family = family[0][0]

        server = make_server(host, port, app, _Server, _QuietHandler)
    except (OSError, OverflowError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise WorkerMetricsError(
            f"cannot serve worker metrics on {host}:{port} ({reason}); set "
            "CONEXAPI_WORKER_METRICS_PORT to a free port (0 serves none) or "
            "CONEXAPI_WORKER_METRICS_HOST to an address of this host"
        ) from None
    return WorkerMetrics(server=server, directory=directory)


__all__ = ["MULTIPROC_ENV", "WorkerMetrics", "WorkerMetricsError", "open_worker_metrics"]
