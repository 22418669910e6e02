from __future__ import annotations

import httpx
import pytest

from tests.auth.support import sessions_of
from tests.ops.world import World, seed_world


@pytest.fixture
async def world(app_client: httpx.AsyncClient) -> World:
    return await seed_world(sessions_of(app_client))
