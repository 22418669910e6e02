from __future__ import annotations

import httpx
import pytest

from tests.ops.world import World, seed_world
from tests.support.auth import sessions_of


@pytest.fixture
async def world(app_client: httpx.AsyncClient) -> World:
    return await seed_world(sessions_of(app_client))
