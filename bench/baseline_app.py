"""The baseline: a bare FastAPI endpoint that parses the same notification body."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Notification(BaseModel):
    resource: str
    user_id: int | str
    topic: str
    application_id: int | str
    attempts: int = 1
    sent: str | None = None
    received: str | None = None


@app.post("/webhooks/mercadolibre")
async def receive(note: Notification) -> dict[str, Any]:
    return {"status": "ok", "topic": note.topic}
