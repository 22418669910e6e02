"""Slow and surplus clients against a real ``conexapi api`` process over real sockets:
slow headers and slow bodies are cut off, connections past the cap are refused at once,
and a normal request still gets through.

The server's deadlines are short here; the test's own waits are long (a loaded machine
must not make them fail), and nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from conexapi.serving import free_port

pytestmark = pytest.mark.slow

CONEXAPI = Path(sys.executable).with_name("conexapi")
#: How long the test waits for the server to act; far above the server's deadlines.
WAIT = 90.0


@contextmanager
def api_server(tmp_path: Path, **settings: str) -> Iterator[int]:
    """``conexapi api`` on a free port with these ``CONEXAPI_*`` settings; its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONEXAPI_")}
    env.update(
        CONEXAPI_ENV="test",
        CONEXAPI_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        **{f"CONEXAPI_{name.upper()}": value for name, value in settings.items()},
    )
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(CONEXAPI), "api", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as a
    close); socket.timeout (the test fails) if it keeps it open for WAIT seconds."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_a_client_that_stalls_in_its_headers_is_disconnected(tmp_path: Path) -> None:
    with api_server(tmp_path, http_header_timeout_seconds="3") as port, ExitStack() as stack:
        stalled = stack.enter_context(_connect(port))
        stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # half a header line

        # Another one keeps sending, a byte at a time: bytes do not buy more time.
        trickling = stack.enter_context(_connect(port))
        stop = threading.Event()

        def trickle() -> None:
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100_000:
                if stop.wait(0.5):
                    return
                try:
                    trickling.send(bytes([byte]))
                except OSError:
                    return  # disconnected: what the test waits for

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            status, body = _status_and_body(_read_until_closed(stalled))
            assert status == 408
            assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
            # Its bytes keep coming after the 408, so the close may arrive as a reset that
            # discards the 408: being disconnected is what counts.
            answer = _read_until_closed(trickling)
            if answer:
                assert _status_and_body(answer)[0] == 408
        finally:
            stop.set()
            sender.join(10)


def test_a_client_that_stalls_in_its_body_gets_408_and_is_dropped(tmp_path: Path) -> None:
    with api_server(tmp_path, http_body_timeout_seconds="3") as port, _connect(port) as sock:
        body = json.dumps({"resource": "/orders/1", "topic": "orders_v2", "pad": "x" * 200})
        sock.sendall(
            b"POST /webhooks/mercadolibre HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2].encode()
        )
        status, answer = _status_and_body(_read_until_closed(sock))
    assert status == 408
    assert answer["status"] == "error"
    assert answer["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert "body" in answer["error"]["message"]  # type: ignore[index]


def test_connections_past_the_cap_are_refused_at_once_and_a_normal_request_works(
    tmp_path: Path,
) -> None:
    cap = 4
    # The header deadline is far above the test's waits: only the cap can refuse here.
    with (
        api_server(
            tmp_path, http_max_connections=str(cap), http_header_timeout_seconds="3600"
        ) as port,
        ExitStack() as stack,
    ):
        held = []
        for _ in range(cap):
            sock = stack.enter_context(_connect(port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # and stalls
            held.append(sock)
        for _ in range(3):
            with _connect(port) as extra:
                try:
                    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    continue  # refused before the request was even written
                answer = _read_until_closed(extra)
                if answer:
                    status, body = _status_and_body(answer)
                    assert status == 503
                    assert body["error"]["code"] == "too_many_connections"  # type: ignore[index]

        # One slow client leaves: its place is free for a normal request, while the
        # others are still held.
        held.pop().close()
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline
            try:
                with httpx.Client(timeout=WAIT) as client:
                    response = client.get(
                        f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
                    )
            except httpx.TransportError:
                time.sleep(0.2)  # refused while the server had not seen the close yet
                continue
            if response.status_code == 200:
                break
            assert response.status_code == 503, response.text  # the same, answered
            time.sleep(0.2)
        assert response.json() == {"status": "ok"}
        for sock in held:  # still connected: the server closed none of them
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
