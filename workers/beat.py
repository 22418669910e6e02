"""One beat, even when two are started: each tick of each job is sent once.

Production runs one ``conexapi beat``; a second one started by mistake (a deploy that
overlaps, a replica count of two) must not run every job twice. Each job's last run is
shared in Redis: before looking at its heap, a beat adopts the last runs the other beats
recorded, so a job another beat has just sent is not due here; and sending is claimed by
a compare-and-set on that shared value, so of two beats that find the same job due at the
same moment exactly one sends it. No beat is a leader: if one stops, the next tick of the
other carries on from the shared state, without a takeover delay and without a repeat.

Every message carries the tick it serves (header ``conexapi_beat_tick``, seconds since the
epoch). Without Redis (the embedded mode, one process) this is Celery's persistent
scheduler unchanged.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from celery.beat import PersistentScheduler, ScheduleEntry

log = structlog.get_logger(__name__)

KEY_PREFIX = "conexapi:beat:last:"
TICK_HEADER = "conexapi_beat_tick"
#: The shared state of a job nobody runs any more expires by itself.
STATE_TTL_SECONDS = 7 * 86400
#: How soon to look again when Redis cannot be reached (nothing is sent meanwhile).
RETRY_SECONDS = 5.0

_CLAIM = """
local current = redis.call('get', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
    redis.call('set', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
    return 1
end
return 0
"""


class SingleBeatScheduler(PersistentScheduler):
    """Celery's shelve-backed scheduler plus the shared last runs described above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._redis: redis.Redis | None = None
        self._claim_script: Any = None
        #: The shared value of each job as last read: what a claim expects to replace.
        self._seen: dict[str, str] = {}
        #: The tick a claimed job's message carries.
        self._claimed: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        url = str(self.app.conf.broker_url or "")
        if url.startswith(("redis://", "rediss://")):
            self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            self._claim_script = self._redis.register_script(_CLAIM)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._redis is not None:
                self._redis.close()
                self._redis = None

    @staticmethod
    def key(name: str) -> str:
        return KEY_PREFIX + name

    def _adopt_shared_runs(self) -> bool:
        """Take over the later last runs of other beats; True if any entry changed."""
        assert self._redis is not None
        names = list(self.schedule)
        if not names:
            return False
        values = self._redis.mget([self.key(n) for n in names])
        changed = False
        for name, raw in zip(names, values, strict=True):
            value = raw.decode() if isinstance(raw, bytes) else ""
            self._seen[name] = value
            if not value:
                continue
            shared = datetime.fromtimestamp(float(value), UTC)
            entry = self.schedule[name]
            if entry.last_run_at is None or _aware(entry.last_run_at) < shared:
                entry.last_run_at = shared
                changed = True
        return changed

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self._redis is None:
            return float(super().tick(*args, **kwargs))
        try:
            if self._adopt_shared_runs():
                self._heap = None  # times changed: the next tick rebuilds the heap
        except (redis.RedisError, ValueError) as exc:
            # Without the shared state two beats cannot agree: send nothing until it is back.
            log.warning("beat_shared_state_unavailable", error=str(exc))
            return min(RETRY_SECONDS, float(self.max_interval or RETRY_SECONDS))
        return float(super().tick(*args, **kwargs))

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        if self._redis is None:
            super().apply_entry(entry, producer=producer)
            return
        name = str(entry.name)
        now = time.time()
        try:
            won = self._claim_script(
                keys=[self.key(name)],
                args=[self._seen.get(name, ""), repr(now), STATE_TTL_SECONDS],
            )
        except redis.RedisError as exc:
            log.warning("beat_claim_failed", job=name, error=str(exc))
            return
        if not won:
            log.debug("beat_tick_sent_elsewhere", job=name)
            return
        self._seen[name] = repr(now)
        self._claimed[name] = now
        current = self.schedule.get(name)
        if current is not None:
            current.last_run_at = datetime.fromtimestamp(now, UTC)
        super().apply_entry(entry, producer=producer)

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        tick = self._claimed.pop(str(entry.name), None)
        if tick is not None:
            # A copy: the entry's options are shared with the schedule's next entry.
            options: dict[str, Any] = dict(entry.options or {})
            options["headers"] = {**(options.get("headers") or {}), TICK_HEADER: tick}
            entry = entry.__class__(**{**vars(entry), "options": options})
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


__all__ = ["KEY_PREFIX", "TICK_HEADER", "SingleBeatScheduler"]
