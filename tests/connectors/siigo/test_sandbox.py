"""The Siigo sandbox's rules over raw HTTP: headers, auth, tokens, the rate limit,
customers, products, catalogs, the admin routes and the kit's knobs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.errors import TransientError
from tests.connectors.siigo.fixtures import (
    PARTNER_ID,
    SiigoAccount,
    SiigoSandbox,
    code_of,
    post_invoice,
    raw_invoice,
    seed_customer,
)

# --- siigo_headers and auth -------------------------------------------------------------------


async def test_partner_id_is_required_on_data_routes(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    no_partner = {"Authorization": siigo_headers["Authorization"]}
    resp = await siigo_sandbox.http.get("/v1/taxes", headers=no_partner)
    assert code_of(resp) == (400, "header_required", ["Partner-Id"])
    assert resp.json()["Status"] == 400
    assert resp.headers["x-request-id"]
    bad = await siigo_sandbox.http.get("/v1/taxes", headers={**no_partner, "Partner-Id": "Mi App!"})
    assert code_of(bad) == (400, "invalid_partner_id", ["Partner-Id"])
    ok = await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)
    assert ok.status_code == 200


async def test_auth(siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount) -> None:
    good = {
        "username": siigo_account.username,
        "access_key": siigo_account.credentials.access_key.get_secret_value(),
    }
    resp = await siigo_sandbox.http.post("/auth", json=good)  # no Partner-Id needed
    assert resp.status_code == 200
    body = resp.json()
    assert body["expires_in"] == 86400
    assert (body["token_type"], body["scope"]) == ("Bearer", "SiigoAPI")
    assert body["access_token"]
    wrong = await siigo_sandbox.http.post("/auth", json={**good, "access_key": "nope"})
    assert code_of(wrong)[:2] == (401, "unauthorized")
    missing = await siigo_sandbox.http.post("/auth", json={"username": siigo_account.username})
    assert code_of(missing) == (400, "parameter_required", ["access_key"])


async def test_tokens_are_required_and_expire(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount
) -> None:
    resp = await siigo_sandbox.http.get("/v1/taxes", headers={"Partner-Id": PARTNER_ID})
    assert code_of(resp)[:2] == (401, "unauthorized")
    forged = await siigo_sandbox.http.get(
        "/v1/taxes", headers={"Partner-Id": PARTNER_ID, "Authorization": "Bearer forged"}
    )
    assert forged.status_code == 401
    await siigo_sandbox.configure(token_lifetime_seconds=600)
    siigo_headers = await siigo_sandbox.headers(siigo_account)
    state = siigo_sandbox.state
    start = state.clock()
    state.clock = lambda: start + 599
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 200
    state.clock = lambda: start + 601
    expired = await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)
    assert code_of(expired)[:2] == (401, "unauthorized")


async def test_request_id_is_echoed_or_made_up(
    siigo_sandbox: SiigoSandbox, siigo_headers: dict[str, str]
) -> None:
    echoed = await siigo_sandbox.http.get(
        "/v1/taxes", headers={**siigo_headers, "x-request-id": "abc123"}
    )
    assert echoed.headers["x-request-id"] == "abc123"
    first = await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)
    second = await siigo_sandbox.http.get("/v1/nothing-here", headers=siigo_headers)
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert code_of(second)[:2] == (404, "not_found")


# --- rate limit -------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_test_company_gets_10_requests_per_window_without_retry_after(
    siigo_sandbox: SiigoSandbox,
) -> None:
    clock = FakeMonotonic()
    siigo_sandbox.app.state.rate_limit.clock = clock
    siigo_account = await siigo_sandbox.account(mode="test")
    siigo_headers = await siigo_sandbox.headers(siigo_account)
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 200
    clock.now += 10
    for _ in range(9):
        assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 200
    limited = await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)
    assert code_of(limited)[:2] == (429, "requests_limit")
    assert "retry-after" not in limited.headers
    assert not any(h.startswith("x-ratelimit") for h in limited.headers)
    assert limited.headers["x-request-id"]
    # /auth does not count, and another company has its own window.
    assert (await siigo_sandbox.headers(siigo_account))["Authorization"]
    other = await siigo_sandbox.account(mode="test")
    assert (
        await siigo_sandbox.http.get("/v1/taxes", headers=await siigo_sandbox.headers(other))
    ).status_code == 200
    # Sliding: 59 s after the first request still limited; at 60 s its slot frees, only it.
    clock.now += 49
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 429
    clock.now += 1
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 200
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 429


async def test_window_is_configurable_and_production_allows_100(
    siigo_sandbox: SiigoSandbox,
) -> None:
    clock = FakeMonotonic()
    siigo_sandbox.app.state.rate_limit.clock = clock
    await siigo_sandbox.configure(rate_limit={"window_seconds": 5})
    siigo_account = await siigo_sandbox.account()
    siigo_headers = await siigo_sandbox.headers(siigo_account)
    statuses = [
        (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code
        for _ in range(101)
    ]
    assert statuses == [200] * 100 + [429]
    clock.now += 5
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 200


async def test_connector_sees_the_real_429_as_transient(
    siigo_sandbox: SiigoSandbox,
) -> None:
    siigo_sandbox.app.state.rate_limit.clock = FakeMonotonic()
    siigo_account = await siigo_sandbox.account(mode="test")
    connector = siigo_sandbox.connector()
    for _ in range(10):
        await connector.find_product(siigo_account.credentials, "X")
    with pytest.raises(TransientError) as caught:
        await connector.find_product(siigo_account.credentials, "X")
    assert (caught.value.code, caught.value.status_code) == ("requests_limit", 429)
    assert caught.value.retry_after is None
    assert caught.value.request_id


# --- customers, products, catalogs ------------------------------------------------------


async def test_customer_creation_rules(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    created = await seed_customer(siigo_sandbox, siigo_headers)
    assert created["id_type"] == {"code": "13", "name": "Cédula de ciudadanía"}
    assert created["address"]["city"]["city_name"] == "Bogotá"
    assert created["fiscal_responsibilities"] == [{"code": "R-99-PN", "name": "No aplica - Otros"}]
    base = {
        "person_type": "Person",
        "id_type": "13",
        "identification": "52000111",
        "name": ["Ana", "Ruiz"],
        "address": {
            "address": "Calle 1",
            "city": {"country_code": "CO", "state_code": "11", "city_code": "11001"},
        },
        "contacts": [{"first_name": "Ana"}],
    }
    cases: list[tuple[dict[str, Any], tuple[str, list[str]]]] = [
        ({"identification": "13832081"}, ("already_exists", ["identification"])),
        ({"contacts": []}, ("parameter_required", ["contacts"])),
        ({"contacts": [{"first_name": "A"}] * 11}, ("invalid_array", ["contacts"])),
        ({"name": ["Ana Ruiz"]}, ("invalid_array", ["name"])),
        ({"identification": "12AB"}, ("invalid_identification", ["identification"])),
        ({"id_type": "99"}, ("invalid_reference", ["id_type"])),
        ({"person_type": "Alien"}, ("invalid_type", ["person_type"])),
        ({"address": {"address": "Calle 1"}}, ("parameter_required", ["address.city"])),
        (
            {"contacts": [{"first_name": "A", "email": "no-at-sign"}]},
            ("invalid_email", ["contacts.email"]),
        ),
    ]
    for change, expected in cases:
        resp = await siigo_sandbox.http.post(
            "/v1/customers", json={**base, **change}, headers=siigo_headers
        )
        assert code_of(resp) == (400, *expected), change
    assert len(await siigo_sandbox.customers(siigo_account)) == 1


async def test_customer_search(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    created = await seed_customer(siigo_sandbox, siigo_headers)
    await seed_customer(siigo_sandbox, siigo_headers, identification="13832081", branch_office=1)
    found = await siigo_sandbox.http.get(
        "/v1/customers",
        params={"identification": "13832081", "branch_office": 0},
        headers=siigo_headers,
    )
    assert [c["id"] for c in found.json()["results"]] == [created["id"]]
    none = await siigo_sandbox.http.get(
        "/v1/customers", params={"identification": "1"}, headers=siigo_headers
    )
    assert none.json()["results"] == [] and none.json()["pagination"]["total_results"] == 0
    one = await siigo_sandbox.http.get(f"/v1/customers/{created['id']}", headers=siigo_headers)
    assert one.json()["identification"] == "13832081"


async def test_products_and_catalogs(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    products = await siigo_sandbox.http.get(
        "/v1/products", params={"code": "SKU-5"}, headers=siigo_headers
    )
    [product] = products.json()["results"]
    assert product["taxes"][0]["percentage"] == 5
    docs = await siigo_sandbox.http.get(
        "/v1/document-types", params={"type": "FV"}, headers=siigo_headers
    )
    assert isinstance(docs.json(), list) and len(docs.json()) == 2
    assert {d["electronic_type"] for d in docs.json()} == {"ElectronicInvoice", "NoElectronic"}
    no_type = await siigo_sandbox.http.get("/v1/document-types", headers=siigo_headers)
    assert code_of(no_type) == (400, "parameter_required", ["type"])
    pays = await siigo_sandbox.http.get("/v1/payment-types", headers=siigo_headers)
    assert code_of(pays) == (400, "parameter_required", ["document_type"])
    pays = await siigo_sandbox.http.get(
        "/v1/payment-types", params={"document_type": "FV"}, headers=siigo_headers
    )
    assert {p["name"] for p in pays.json()} >= {"Efectivo", "Crédito"}
    taxes = (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).json()
    assert {(t["name"], t["percentage"]) for t in taxes} >= {("IVA 19%", 19), ("IVA 5%", 5)}
    users = (await siigo_sandbox.http.get("/v1/users", headers=siigo_headers)).json()
    assert users["pagination"]["total_results"] == 2


async def test_connector_catalogs_against_the_sandbox(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount
) -> None:
    catalogs = await siigo_sandbox.connector().catalogs(siigo_account.credentials)
    assert {str(d.id) for d in catalogs.document_types} == {
        siigo_account.document_type("1"),
        siigo_account.document_type("2"),
    }
    assert catalogs.tax_percentages()[siigo_account.tax_id()] == Decimal(19)
    assert any(u.id == siigo_account.company["seller_id"] and u.active for u in catalogs.users)


# --- admin routes and knobs -------------------------------------------------------------


async def test_admin_edit_and_delete_behind_the_products_back(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await seed_customer(siigo_sandbox, siigo_headers)
    created = (
        await post_invoice(
            siigo_sandbox, siigo_headers, raw_invoice(siigo_sandbox, siigo_account), "DEL1"
        )
    ).json()
    edited = await siigo_sandbox.http.patch(
        f"/_sandbox/invoices/{created['id']}", json={"stamp": {"status": "Rejected"}}
    )
    assert edited.json()["stamp"]["status"] == "Rejected"
    assert edited.json()["stamp"]["cufe"] == created["stamp"]["cufe"]
    got = await siigo_sandbox.http.get(f"/v1/invoices/{created['id']}", headers=siigo_headers)
    assert got.json()["stamp"]["status"] == "Rejected"
    assert got.json()["metadata"]["last_updated"]
    deleted = await siigo_sandbox.http.delete(f"/_sandbox/invoices/{created['id']}")
    assert deleted.json() == {"id": created["id"], "deleted": True}
    gone = await siigo_sandbox.http.get(f"/v1/invoices/{created['id']}", headers=siigo_headers)
    assert gone.status_code == 404
    assert await siigo_sandbox.invoices(siigo_account) == []
    again = await siigo_sandbox.http.delete(f"/_sandbox/invoices/{created['id']}")
    assert again.status_code == 404


async def test_admin_validation(siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount) -> None:
    dup = await siigo_sandbox.http.post(
        "/_sandbox/companies", json={"username": siigo_account.username, "access_key": "x"}
    )
    assert code_of(dup)[:2] == (409, "already_exists")
    bad_mode = await siigo_sandbox.http.post(
        "/_sandbox/companies", json={"username": "z@z.co", "access_key": "x", "mode": "beta"}
    )
    assert bad_mode.status_code == 400
    no_company = await siigo_sandbox.http.post(
        "/_sandbox/products", json={"company": "nobody", "code": "A", "name": "A"}
    )
    assert no_company.status_code == 404
    bad_code = await siigo_sandbox.http.post(
        "/_sandbox/products", json={"company": siigo_account.username, "code": "A B", "name": "A"}
    )
    assert code_of(bad_code)[:2] == (400, "invalid_code")
    summary = siigo_account.company
    assert summary["document_type_id"] == int(siigo_account.document_type("1"))
    assert {"IVA 19%", "IVA 5%"} <= set(summary["tax_ids"])
    assert summary["mode"] == "production"


@pytest.mark.parametrize(
    ("knob", "status", "code"),
    [
        ({"outage": "503"}, 503, "service_unavailable"),
        ({"fail_next": [{"route": "GET /v1/taxes", "status": 500}]}, 500, "unhandled_error"),
        ({"fail_next": [{"route": "/v1/*", "status": 429}]}, 429, "requests_limit"),
        ({"error_rate": {"GET /v1/taxes": 1.0}}, 500, "unhandled_error"),
    ],
)
async def test_kit_knobs_speak_siigo(
    siigo_sandbox: SiigoSandbox,
    siigo_headers: dict[str, str],
    knob: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await siigo_sandbox.configure(**knob)
    resp = await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)
    assert code_of(resp)[:2] == (status, code)
    assert resp.headers["x-request-id"]
    log = await siigo_sandbox.requests(path="/v1/taxes")
    assert log[-1]["status"] == status and log[-1].get("fault")


async def test_reset_forgets_everything(
    siigo_sandbox: SiigoSandbox, siigo_account: SiigoAccount, siigo_headers: dict[str, str]
) -> None:
    await siigo_sandbox.configure(token_lifetime_seconds=5)
    assert (await siigo_sandbox.http.post("/_sandbox/reset")).status_code == 200
    assert (await siigo_sandbox.http.get("/_sandbox/companies")).json() == []
    assert (await siigo_sandbox.http.get("/v1/taxes", headers=siigo_headers)).status_code == 401
    config = (await siigo_sandbox.http.get("/_sandbox/config")).json()
    assert config["token_lifetime_seconds"] == 86400
