"""Steps of a consent as a merchant's browser and the ops API take them (for the tests)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conexapi.models import Connection
from tests.connections.sandboxes import admin
from tests.support.auth import admin_headers, scoped_headers

Sessions = async_sessionmaker[AsyncSession]

ML_CLIENT_ID = "5503910054141466"
ML_CLIENT_SECRET = "sandbox-client-secret-0123456789"
CALLBACK = "http://testserver/oauth/mercadolibre/callback"
LINK = "http://testserver/oauth/mercadolibre/start?"
RETURN_ORIGIN = "https://merchant.example"
SELLER = 468424240
RETURN_TO = f"{RETURN_ORIGIN}/settings/connections?tab=ml"
#: A Siigo company's API user and access key.
USERNAME = "api@tienda.com.co"
ACCESS_KEY = "NDllMzI0NmEtNjExZC00NGM3LWE3OTQtMWUyNTNlZWU0ZTM0OkosU2MwLD4xQ08="


async def new_merchant(client: httpx.AsyncClient, slug: str) -> dict[str, str]:
    """A merchant (made by an admin) and headers of an operator key that sees only it."""
    response = await client.post(
        "/api/v1/merchants", json={"name": slug, "slug": slug}, headers=await admin_headers(client)
    )
    assert response.status_code == 201, response.text
    return await scoped_headers(client, response.json()["id"])


async def start_link(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    """The consent link the API hands out (to be opened by the merchant's browser)."""
    response = await client.post(
        "/api/v1/connections/mercadolibre/authorize", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["authorization_url"]
    assert url.startswith(LINK), url
    return url


async def open_link(browser: httpx.AsyncClient, link: str) -> str:
    """A browser opens a consent link and continues from its page; returns the consent URL."""
    page = await browser.get(link.removeprefix("http://testserver"))
    assert page.status_code == 200, page.text
    state = parse_qs(urlsplit(link).query)["state"][0]
    continued = await browser.post(urlsplit(link).path, data={"state": state})
    assert continued.status_code == 303, continued.text
    url: str = continued.headers["location"]
    return url


async def start(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    """An API start whose link ``client`` itself opens (as the merchant's browser)."""
    return await open_link(client, await start_link(client, headers, **body))


def consent(authorization_url: str, *, user_id: int | None = SELLER, deny: bool = False) -> str:
    """What the merchant's browser does on the consent page; returns the callback URL."""
    extra = "&auto_deny=1" if deny else f"&auto_consent={user_id}"
    response = httpx.get(authorization_url + extra, follow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    assert location.startswith("http://testserver/oauth/mercadolibre/callback?")
    return location


async def callback(client: httpx.AsyncClient, url: str) -> httpx.Response:
    parts = urlsplit(url)
    return await client.get(f"{parts.path}?{parts.query}")


def outcome(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == RETURN_ORIGIN
    return {k: v[0] for k, v in parse_qs(target.query).items()}


async def count_connections(sm: Sessions) -> int:
    async with sm() as session:
        return int(await session.scalar(select(func.count()).select_from(Connection)) or 0)


def token_requests(ml_sandbox: str, grant_type: str) -> list[dict[str, Any]]:
    requests = admin(ml_sandbox, "GET", "/_sandbox/requests", params={"path": "/oauth/token"})
    return [r for r in requests if form(r).get("grant_type") == grant_type]


def form(request: dict[str, Any]) -> dict[str, str]:
    """The form body of a logged token request."""
    body = request.get("body") or ""
    if isinstance(body, dict):
        return body
    return {k: v[0] for k, v in parse_qs(body).items()}


async def navigate(browser: httpx.AsyncClient, url: str, seller: int = SELLER) -> httpx.Response:
    """A browser sent to ``url`` with no one clicking anything (a link, a redirect set up by
    someone else), following redirects between this service and the marketplace (the
    sandbox, on 127.0.0.1) and stopping at any other. The seller is signed in at the
    marketplace and approved this application before, so the marketplace sends them
    straight back, as Mercado Libre does."""
    for _ in range(10):
        if url.startswith("http://testserver"):
            response = await browser.get(url.removeprefix("http://testserver"))
        else:
            response = await asyncio.to_thread(
                httpx.get, url + f"&auto_consent={seller}", timeout=10
            )
        location = response.headers.get("location", "")
        if response.status_code not in (302, 303) or not location.startswith(_FOLLOWED):
            return response
        url = location
    raise AssertionError("too many redirects")


_FOLLOWED = ("http://testserver/", "http://127.0.0.1:")


def authorization_requests(ml_sandbox: str) -> list[dict[str, Any]]:
    """The consent pages the marketplace was asked for."""
    requests: list[dict[str, Any]] = admin(
        ml_sandbox, "GET", "/_sandbox/requests", params={"path": "/authorization"}
    )
    return requests
