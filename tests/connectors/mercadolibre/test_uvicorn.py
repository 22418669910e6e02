"""The sandbox served by uvicorn over real sockets, as ``conexapi sandbox`` will run it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn

from connectors.base import NoLimit
from connectors.errors import TransientError
from connectors.mercadolibre import connector as spec
from connectors.mercadolibre import factory
from tests.connectors.mercadolibre.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SELLER_ID,
    ml_settings,
)

pytestmark = pytest.mark.integration


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        spec.sandbox_app(),
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn stopped during startup"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_over_real_http(base_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url) as admin,
        httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http,
    ):
        await admin.post("/_sandbox/sellers", json={"user_id": SELLER_ID, "nickname": "T"})
        await admin.post(
            "/_sandbox/apps",
            json={
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": REDIRECT_URI,
                "pkce": True,
            },
        )
        settings = ml_settings(api_url=base_url, auth_url=base_url)
        connector = factory(http, settings, NoLimit())

        request = connector.authorization_request(state="s1")
        redirect = await admin.get(f"{request.url}&auto_consent={SELLER_ID}")
        code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
        tokens = await connector.exchange_code(code, request.code_verifier)
        token = tokens.access_token.get_secret_value()
        ids = (
            await admin.post("/_sandbox/orders/generate", json={"seller_id": SELLER_ID, "count": 1})
        ).json()["ids"]
        order = await connector.fetch_order(token, str(ids[0]))
        assert order.external_id == str(ids[0])

        # A real socket read timeout.
        await admin.patch(
            "/_sandbox/config",
            json={
                "hang_seconds": 1,
                "fail_next": [{"route": "GET /orders/*", "status": "timeout"}],
            },
        )
        with pytest.raises(TransientError) as caught:
            await connector.fetch_order(token, str(ids[0]))
        assert caught.value.code == "timeout"

        # The notifier over the network: nobody listens on the callback port.
        closed = _listening_socket()
        dead_port = closed.getsockname()[1]
        closed.close()
        await admin.put(
            "/_sandbox/notifications",
            json={
                "callback_url": f"http://127.0.0.1:{dead_port}/hook",
                "application_id": CLIENT_ID,
            },
        )
        await admin.patch("/_sandbox/config", json={"notify_retry_delays": [0.0]})
        result = (
            await admin.post("/_sandbox/notify", json={"resource": f"/orders/{ids[0]}"})
        ).json()
        [record] = result["notifications"]
        assert record["missed"] is True
        assert {d["error"] for d in record["deliveries"]} == {"ConnectError"}
