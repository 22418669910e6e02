"""A consent started through the API is bound to the browser that continues it from the
consent link's page, so nobody can get a seller linked to a merchant the seller did not
choose: not by sending the seller's browser to the link, nor to a consent URL they
obtained themselves, nor by submitting the page's form from another site."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from conexapi.models import OAuthState
from tests.connections.flow import (
    RETURN_TO,
    Sessions,
    count_connections,
    navigate,
    new_merchant,
    open_link,
    outcome,
    start_link,
    token_requests,
)
from tests.connections.flow import (
    authorization_requests as consents_asked,
)

Browsers = Callable[[], httpx.AsyncClient]


def refused_page(response: httpx.Response, code: str) -> str:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text
    assert "location" not in response.headers
    return response.text


async def test_a_seller_sent_to_an_operators_link_is_not_linked_without_choosing_to(
    app_client: httpx.AsyncClient,
    app_db: Sessions,
    browsers: Browsers,
    ml_sandbox: str,
    seller: int,
) -> None:
    """The operator starts a consent through the API and sends the seller's browser to the
    URL it got (a link, a redirect): the marketplace would send that seller straight back."""
    operator = await new_merchant(app_client, "operators-shop")
    started = await app_client.post(
        "/api/v1/connections/mercadolibre/authorize",
        json={"return_to": RETURN_TO},
        headers=operator,
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]

    landed = await navigate(browsers(), url)  # the seller's browser
    assert await count_connections(app_db) == 0
    assert token_requests(ml_sandbox, "authorization_code") == []
    assert consents_asked(ml_sandbox) == []
    # The browser stops on a page that says which merchant the account would go to.
    assert landed.status_code == 200, landed.text
    assert "operators-shop" in landed.text
    assert landed.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in landed.headers["content-security-policy"]

    # Another site submitting the page's form for the visitor: no SameSite cookie comes
    # with it, so nothing is bound and the visitor goes nowhere.
    state = parse_qs(urlsplit(url).query)["state"][0]
    forged = await browsers().post("/oauth/mercadolibre/start", data={"state": state})
    refused_page(forged, "state_browser_mismatch")
    async with app_db() as session:
        assert await session.scalar(select(OAuthState.browser_binding)) is None
    assert consents_asked(ml_sandbox) == []
    assert await count_connections(app_db) == 0


async def test_a_consent_url_is_finished_only_by_the_browser_that_continued_the_link(
    app_client: httpx.AsyncClient,
    app_db: Sessions,
    browsers: Browsers,
    ml_sandbox: str,
    seller: int,
) -> None:
    """The operator continues its own link and hands the marketplace URL on instead."""
    operator = await new_merchant(app_client, "operators-shop")
    operators_browser = browsers()
    consent_url = await open_link(operators_browser, await start_link(app_client, operator))

    finished = await navigate(browsers(), consent_url)  # the seller's browser
    assert "another browser" in refused_page(finished, "state_browser_mismatch")
    assert token_requests(ml_sandbox, "authorization_code") == []
    assert await count_connections(app_db) == 0


async def test_the_seller_opens_the_link_and_continues_it(
    app_client: httpx.AsyncClient,
    app_db: Sessions,
    browsers: Browsers,
    ml_sandbox: str,
    seller: int,
) -> None:
    """The documented flow: the API hands out a link, the seller opens it in any browser."""
    merchant = await new_merchant(app_client, "tienda-del-vendedor")
    link = await start_link(app_client, merchant, return_to=RETURN_TO)

    # A link scanner (mail, chat) opens it first: that binds nothing.
    assert (await navigate(browsers(), link)).status_code == 200

    sellers_browser = browsers()
    consent_url = await open_link(sellers_browser, link)
    assert consent_url.startswith(ml_sandbox + "/authorization?")
    linked = outcome(await navigate(sellers_browser, consent_url))
    assert linked["status"] == "linked"
    listed = (await app_client.get("/api/v1/connections", headers=merchant)).json()["items"]
    assert [c["id"] for c in listed] == [int(linked["connection_id"])]
    assert [r["status"] for r in token_requests(ml_sandbox, "authorization_code")] == [200]

    # Once continued in one browser, the link is that browser's.
    late = await browsers().get(urlsplit(link).path + "?" + urlsplit(link).query)
    refused_page(late, "state_replayed")


async def test_a_link_continued_in_one_browser_cannot_be_continued_in_another(
    app_client: httpx.AsyncClient,
    app_db: Sessions,
    browsers: Browsers,
    ml_sandbox: str,
    seller: int,
) -> None:
    merchant = await new_merchant(app_client, "one-browser")
    link = await start_link(app_client, merchant)
    first = browsers()
    await open_link(first, link)
    # The same browser may continue again (a reload, the back button)...
    assert (await open_link(first, link)).startswith(ml_sandbox + "/authorization?")

    # ...another one may not, whether it opens the page or posts the form.
    other = browsers()
    page = await other.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert "another browser" in refused_page(page, "state_browser_mismatch")
    state = parse_qs(urlsplit(link).query)["state"][0]
    posted = await other.post("/oauth/mercadolibre/start", data={"state": state})
    refused_page(posted, "state_browser_mismatch")


async def test_bad_consent_links_get_a_clear_page(
    app_client: httpx.AsyncClient, browsers: Browsers, ml_sandbox: str
) -> None:
    browser = browsers()
    for query in ("", "?state=" + "A" * 48, "?state=" + "A" * 5000):
        page = await browser.get("/oauth/mercadolibre/start" + query)
        assert "not valid" in refused_page(page, "state_invalid")
    posted = await browser.post("/oauth/mercadolibre/start", data={})
    refused_page(posted, "state_browser_mismatch")
    unknown = await browser.get("/oauth/nosuch/start?state=abc")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_connector"
