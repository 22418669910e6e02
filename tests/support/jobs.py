"""A job sender for tests."""

from __future__ import annotations

from conexapi.kit import jobs


class RecordingSender:
    """A job sender that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.jobs: list[jobs.Job] = []

    async def send(self, batch: list[jobs.Job]) -> None:
        self.jobs.extend(batch)
