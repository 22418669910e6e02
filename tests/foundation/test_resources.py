"""The process's resources: one typed container, complete when it is opened."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import respx

from conexapi.kit.context import collect_upstream_ids
from conexapi.kit.resources import open_resources
from conexapi.settings import Settings
from connectors.registry import all_connectors


async def test_opened_resources_hold_every_connector_and_note_upstream_ids(
    settings_factory: Callable[..., Settings],
) -> None:
    res = await open_resources(settings_factory())
    try:
        made = {**res.integrations.marketplaces, **res.integrations.erps}
        assert sorted(made) == sorted(all_connectors())
        assert res.sync.integrations is res.integrations
        # The client notes upstream request ids from its first call: nobody has to touch
        # the connectors (or the client's hooks) before.
        ids = collect_upstream_ids()
        with respx.mock:
            respx.get("https://upstream.test/x").mock(
                return_value=httpx.Response(200, headers={"x-request-id": "up-1"})
            )
            await res.http.get("https://upstream.test/x")
        assert ids == ["upstream.test:up-1"]
    finally:
        await res.aclose()
