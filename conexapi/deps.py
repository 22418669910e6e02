"""Request-scoped dependencies shared by every domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from conexapi.db import unit_of_work
from conexapi.kit.resources import Resources
from conexapi.settings import Settings


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_app_settings(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: commit on success, roll back on error, then enqueue."""
    async with unit_of_work(resources.sessionmaker) as session:
        yield session


#: ``scope="function"``: the unit of work commits before the answer leaves. With FastAPI's
#: default scope the exit code runs after the response is sent, so a client could be told
#: 201 for a write whose commit then failed, or act on an answer (follow a redirect, read
#: what it just created) before the write is visible.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
