"""An API answer leaves only after its unit of work committed.

FastAPI ends a ``yield`` dependency after the response is sent unless it is declared with
``scope="function"``; the request's unit of work would then commit after the client was
told 201 — so a failed commit would lose a write the client believes was made, and a
client acting on the answer (a browser following a redirect) could find nothing there.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.models import Merchant
from tests.support.auth import admin_headers, register, sessions_of


async def test_a_commit_that_fails_is_never_answered_201(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LifespanManager(app) as manager:
        # As a real server: an exception after the answer was sent does not reach the client.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            register(client, app)
            headers = await admin_headers(client)
            real_commit = AsyncSession.commit

            async def failing_commit(self: AsyncSession) -> None:
                # Only the unit of work that wrote the merchant (its own insert is visible).
                if await self.scalar(select(func.count()).select_from(Merchant)):
                    raise OperationalError("COMMIT", {}, Exception("server has gone away"))
                await real_commit(self)

            monkeypatch.setattr(AsyncSession, "commit", failing_commit)
            resp = await client.post(
                "/api/v1/merchants", json={"name": "Tienda", "slug": "tienda"}, headers=headers
            )
            monkeypatch.setattr(AsyncSession, "commit", real_commit)

            assert resp.status_code != 422, resp.text  # the write itself was valid
            assert not resp.is_success, resp.text
            body: dict[str, Any] = resp.json()
            assert body["status"] == "error"
            async with sessions_of(client)() as s:
                assert await s.scalar(select(func.count()).select_from(Merchant)) == 0
