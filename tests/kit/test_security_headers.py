"""Every answer carries the security headers: JSON, error envelopes (from a handler and
from the middlewares themselves), the webhook fast path and the FastAPI route behind it,
the API documentation (with a policy that lets its page load), and ``/metrics`` with its
optional token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from conexapi.app import create_app
from conexapi.kit.docs import inline_script_hashes
from conexapi.kit.security import DATA_POLICY
from conexapi.settings import Settings
from tests.support.auth import admin_headers

EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_secured(response: httpx.Response, policy: str | None = DATA_POLICY) -> None:
    for name, value in EVERYWHERE.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert "strict-transport-security" not in response.headers  # served as http here
    if policy is not None:
        assert response.headers.get("content-security-policy") == policy


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        out[name] = sources
    return out


@pytest.fixture
async def served(
    app_settings: Settings, sent_jobs: list[Any]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(app_settings, send_jobs=False)

    async def boom() -> None:
        raise RuntimeError("unexpected")

    app.add_api_route("/_test/boom", boom)  # answered 500 by RequestContextMiddleware
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            from tests.support.auth import register

            register(client, app)
            yield app, client


async def test_json_and_error_envelopes_carry_them(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = served
    ok = await client.get("/healthz")
    assert ok.status_code == 200
    assert_secured(ok)
    assert "cache-control" not in ok.headers  # nothing private in it

    missing = await client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    assert_secured(missing)

    failed = await client.get("/_test/boom")
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
    assert_secured(failed)

    too_large = await client.post(
        "/api/v1/merchants", content=b"x", headers={"content-length": str(10**9)}
    )
    assert too_large.status_code == 413
    assert_secured(too_large)


async def test_authenticated_answers_are_not_stored(
    served: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = served
    listed = await client.get("/api/v1/merchants", headers=await admin_headers(client))
    assert listed.status_code == 200
    assert_secured(listed)
    assert listed.headers["cache-control"] == "no-store"
    refused = await client.get("/api/v1/merchants")
    assert refused.status_code == 401
    assert_secured(refused)
    assert refused.headers["cache-control"] == "no-store"
    # A token answer carries credentials though its request carried none (RFC 6749 5.1).
    login = await client.post("/api/v1/auth/token", data={"username": "x", "password": "y"})
    assert login.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("front", ["fast path", "FastAPI route"])
async def test_webhook_answers_carry_them_on_both_paths(
    served: tuple[FastAPI, httpx.AsyncClient], front: str
) -> None:
    app, client = served
    if front == "FastAPI route":
        app.front = None
    for body in (b"{not json", b'{"topic": "orders_v2"}'):
        answer = await client.post(
            "/webhooks/mercadolibre", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code < 500, answer.text
        assert answer.headers["x-request-id"]
        assert_secured(answer)
    too_large = await client.post(
        "/webhooks/mercadolibre", content=b"x", headers={"content-length": str(10**9)}
    )
    assert too_large.status_code == 413
    assert_secured(too_large)


async def test_https_public_url_adds_hsts(
    settings_factory: Callable[..., Settings], migrated_db: Any, sqlite_url: str
) -> None:
    await migrated_db(sqlite_url)
    app = create_app(settings_factory(public_url="https://conexapi.example"), send_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for answer in (
                await client.get("/healthz"),
                await client.post("/webhooks/mercadolibre", content=b"{"),
            ):
                assert answer.headers["strict-transport-security"] == "max-age=31536000"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(str(a["src"]))
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(str(a["href"]))
        elif tag == "link" and "icon" in str(a.get("rel")):
            self.images.append(str(a["href"]))


def _origin(url: str) -> str:
    return f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_documentation_pages_get_the_policy_their_page_needs(
    served: tuple[FastAPI, httpx.AsyncClient], path: str
) -> None:
    _, client = served
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_secured(page, policy=None)
    policy = directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    script_src = policy.get("script-src", [])
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    # Every inline script runs by its hash; every file loads from an origin allowed for it.
    hashes = inline_script_hashes(page.text)
    assert hashes == [s for s in script_src if s.startswith("'sha256-")]
    if re.search(r"<script>", page.text):
        assert hashes
    found = _Page()
    found.feed(page.text)
    for url in found.scripts:
        assert _origin(url) in script_src, url
    for url in found.styles:
        assert _origin(url) in policy["style-src"], url
    for url in found.images:
        assert _origin(url) in policy["img-src"], url
    if path != "/docs/oauth2-redirect":
        # The page fetches the OpenAPI document (and Swagger UI sends the tried requests).
        assert "/openapi.json" in page.text
        assert policy["connect-src"] == ["'self'"]
    document = await client.get("/openapi.json")
    assert_secured(document)


async def test_metrics_open_without_a_token(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = served
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert "conexapi_http_requests_total" in answer.text
    assert_secured(answer)


@pytest.fixture
def metrics_token() -> str:
    return "a-metrics-token-of-some-length"


async def test_metrics_token_is_required_when_set(
    settings_factory: Callable[..., Settings], migrated_db: Any, sqlite_url: str, metrics_token: str
) -> None:
    await migrated_db(sqlite_url)
    app = create_app(settings_factory(metrics_token=metrics_token), send_jobs=False)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {metrics_token}"},
                {"Authorization": f"Bearer {metrics_token}x"},
            ):
                refused = await client.get("/metrics", headers=headers)
                assert refused.status_code == 401, headers
                body = refused.json()
                assert body["status"] == "error" and body["error"]["code"] == "unauthorized"
                assert "CONEXAPI_METRICS_TOKEN" in body["error"]["message"]
                assert "conexapi_" not in refused.text
                assert_secured(refused)
            answer = await client.get(
                "/metrics", headers={"Authorization": f"Bearer {metrics_token}"}
            )
            assert answer.status_code == 200
            assert "conexapi_http_requests_total" in answer.text
            assert answer.headers["cache-control"] == "no-store"
