"""Slow and surplus clients, dealt with where the bytes arrive: uvicorn's HTTP protocol.

uvicorn (httptools and h11 alike) arms a timer only between requests on a kept-alive
connection (``timeout_keep_alive``), and any byte that arrives cancels it. A client that
connects and sends nothing, half a request line, or a body one byte a minute holds its
socket for ever; ``limit_concurrency`` answers 503 only once a request's headers are
complete, so it caps none of those. 1,500 such clients exhausted the descriptors of an
API process. Nothing at the ASGI level can help: the application is called only once the
headers are complete, and a response it sends does not close the connection.

:class:`GuardedHttpProtocol` adds three things to uvicorn's httptools protocol, and only
these:

- a **header deadline**: a request's headers must be complete within
  ``header_timeout`` of the connection opening (or of the previous response ending); a
  trickle of bytes does not extend it;
- a **body deadline**: its body must be complete within ``body_timeout`` of its headers;
- a **connection cap**: past ``max_connections`` open connections a new one is answered
  503 at once and closed, before anything is read from it.

A deadline missed before the response started is answered ``408`` in the error envelope
with ``Connection: close``; otherwise the connection is just closed. The application sees
a client that went away (``http.disconnect``). It overrides the protocol's parser
callbacks (``on_headers_complete``, ``on_message_complete``, ``on_response_complete``)
and reads ``cycle``, ``pipeline`` and ``connections``: uvicorn internals, stable for
years and exercised by ``tests/foundation/test_http_limits.py`` against a real server.
"""

from __future__ import annotations

import asyncio
import json
import resource
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conexapi.kit.errors import envelope
from conexapi.settings import Settings

log = structlog.get_logger(__name__)

#: Descriptors left for everything but client connections (database and Redis pools,
#: outbound HTTP, log files) when the cap is derived from the open-file limit.
RESERVED_DESCRIPTORS = 200


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> HttpLimits:
        """The configured limits; the defaults without ``settings`` (test servers)."""
        fields = Settings.model_fields

        def value(name: str) -> Any:
            return getattr(settings, name) if settings is not None else fields[name].default

        return cls(
            header_timeout=value("http_header_timeout_seconds"),
            body_timeout=value("http_body_timeout_seconds"),
            max_connections=_within_file_limit(value("http_max_connections")),
        )


def _within_file_limit(wanted: int) -> int:
    """The cap, lowered to fit the process's open-file limit: one descriptor per client
    connection, and a cap above the limit would fail with EMFILE instead of a 503."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - RESERVED_DESCRIPTORS:
        return wanted
    fitted = max(soft - RESERVED_DESCRIPTORS, soft // 2, 1)
    log.warning(
        "http_max_connections_lowered",
        configured=wanted,
        used=fitted,
        open_file_limit=soft,
        hint="raise the limit (ulimit -n) to allow more connections",
    )
    return fitted


class GuardedConfig(uvicorn.Config):
    """uvicorn's configuration with :class:`GuardedHttpProtocol` and its limits.

    A module-level class, so it pickles into ``--workers`` child processes.
    """

    def __init__(self, app: Any, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpProtocol, **kwargs)
        self.limits = limits


def _response(status: int, reason: str, code: str, message: str, extra: bytes = b"") -> bytes:
    body = json.dumps(envelope(code, message), separators=(",", ":")).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n".encode()
        + extra
        + b"connection: close\r\n\r\n"
        + body
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if not isinstance(config, GuardedConfig):
            raise TypeError("GuardedHttpProtocol needs a GuardedConfig (its limits)")
        self.limits = config.limits
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Answered before reading anything: the client learns at once, and the
            # descriptor is released at once.
            self._refused = True
            transport.write(
                _response(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    "The server has too many open connections; retry shortly.",
                    b"retry-after: 1\r\n",
                )
            )
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    # --- parser callbacks -----------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.limits.body_timeout, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's headers are due now, unless they came already (a pipelined
        # request) or this request's body is still on its way (its deadline still runs).
        if not self.transport.is_closing() and not self.pipeline and self._deadline is None:
            self._arm(self.limits.header_timeout, self._headers_too_slow)

    # --- deadlines ------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._time_out(
            f"The request headers did not arrive within {self.limits.header_timeout:g} s; "
            "send the whole request at once."
        )

    def _body_too_slow(self) -> None:
        self._deadline = None
        self._time_out(
            f"The request body did not arrive within {self.limits.body_timeout:g} s of its "
            "headers; send the whole request at once."
        )

    def _time_out(self, message: str) -> None:
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed already, or handed over to a WebSocket protocol
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_response(408, "Request Timeout", "request_timeout", message))
        if cycle is not None and not cycle.response_complete:
            # The application's own answer must not follow the 408, and a receive()
            # waiting for the rest of the body must wake up to a disconnect.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
