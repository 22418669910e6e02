"""Path and query parameters every list and detail endpoint shares."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from conexapi.kit.api.pagination import MAX_LIMIT

MAX_ID = 2**63 - 1

#: An id in a path: bounded so no value can overflow a database integer.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorQuery = Annotated[str | None, Query(max_length=512)]
