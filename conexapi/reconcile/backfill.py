"""``conexapi backfill``: reconcile a past range, hour by hour, without moving the cursor."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from conexapi.connections.errors import ReauthRequired
from conexapi.kit import jobs
from conexapi.kit.resources import Resources, open_resources
from conexapi.models import Pipeline, utcnow
from conexapi.reconcile.rules import Window
from conexapi.reconcile.service import WindowResult, reconcile_window, usable_source
from conexapi.settings import Settings
from conexapi.sync.context import SyncContext
from conexapi.sync.days import pipeline_zones
from conexapi.sync.runner import execute_run
from connectors.errors import ConnectorError

#: Windows of one hour: Mercado Libre's search filters by the hour anyway.
SPAN = timedelta(hours=1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BackfillError(Exception):
    pass


#: Longest range one backfill reads (hour by hour): longer ones are run in parts.
MAX_RANGE = timedelta(days=400)


def parse_moment(value: str, *, end: bool = False) -> datetime | date:
    """``2026-03-01`` (a day in the pipeline's time zone: the day to start at, or with
    ``end`` the day after it, see :func:`resolve`) or an ISO date-time with an offset."""
    value = value.strip()
    try:
        if _DATE.match(value):
            return date.fromisoformat(value) + timedelta(days=1 if end else 0)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise BackfillError(
            f"{value!r} is not a real day (YYYY-MM-DD) nor an ISO date-time"
        ) from None
    if moment.tzinfo is None:
        raise BackfillError(f"{value!r} has no UTC offset")
    return moment


def resolve(moment: datetime | date, zone: tzinfo) -> datetime:
    """A day's start in ``zone``, or the moment itself."""
    if isinstance(moment, datetime):
        return moment
    return datetime.combine(moment, time(0), zone)


def _local(moment: datetime, zone: tzinfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def hourly(since: datetime, until: datetime, span: timedelta = SPAN) -> list[Window]:
    out = []
    start = since
    while start < until:
        stop = min(start + span, until)
        out.append(Window(start, stop))
        start = stop
    return out


@dataclass
class BackfillResult:
    windows: int = 0
    totals: WindowResult = field(default_factory=WindowResult)
    #: Runs executed in this process (embedded mode, where no worker listens).
    ran_here: int = 0


async def backfill(
    res: Resources,
    pipeline_id: int,
    since: datetime,
    until: datetime | None = None,
    *,
    on_window: Callable[[Window, WindowResult], None] | None = None,
    run_here: bool | None = None,
) -> BackfillResult:
    """Compare every order updated in ``[since, until)`` and request the syncs due.

    The same comparison as the periodic reconcile, so a range already synced requests
    nothing. The queued runs go to the workers; ``run_here`` (default: in the embedded
    mode, where this process's queue reaches no worker) runs them here instead.
    """
    ctx = SyncContext.of(res)
    lag = timedelta(seconds=res.settings.reconcile_lag_seconds)
    until = min(until or utcnow() - lag, utcnow() - lag)
    if since >= until:
        raise BackfillError(f"nothing to do: {since.isoformat()} is not before {until.isoformat()}")
    found = await usable_source(ctx, pipeline_id)
    if isinstance(found, str):
        raise BackfillError(f"pipeline {pipeline_id}: {found}")
    _, source = found
    token = await ctx.access_token(source)
    if run_here is None:
        run_here = res.settings.embedded
    result = BackfillResult()
    for window in hourly(since, until):
        done = await reconcile_window(ctx, pipeline_id, source, token, window)
        result.windows += 1
        result.totals.add(done)
        if run_here:
            for run_id in done.run_ids:
                await execute_run(ctx, run_id)
                result.ran_here += 1
        if on_window is not None:
            on_window(window, done)
    return result


async def run_backfill_command(
    settings: Settings, pipeline_id: int, since: datetime | date, until: datetime | date | None
) -> int:
    """``conexapi backfill`` with a progress bar; the exit code."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    res = await open_resources(settings)
    sender_set = False
    try:
        if not settings.embedded and not jobs.has_sender():
            from workers.celery_app import create_celery
            from workers.sender import CelerySender

            jobs.set_sender(CelerySender(create_celery(settings)))
            sender_set = True
        async with res.sessionmaker() as session:
            # An unknown pipeline is refused by backfill() below, whatever its zone.
            zone = (await pipeline_zones(session, Pipeline.id == pipeline_id)).get(pipeline_id, UTC)
        start = resolve(since, zone)
        lag = timedelta(seconds=settings.reconcile_lag_seconds)
        now_end = utcnow() - lag
        end = min(resolve(until, zone) if until else now_end, now_end)
        if end - start > MAX_RANGE:
            raise BackfillError(
                f"the range covers {(end - start).days} days; backfill at most "
                f"{MAX_RANGE.days} at a time (run it again for the next part)"
            )
        with Progress(
            TextColumn("[bold]backfill[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("orders {task.fields[orders]}  syncs {task.fields[syncs]}"),
            console=console,
        ) as progress:
            task = progress.add_task(
                f"pipeline {pipeline_id}", total=len(hourly(start, end)), orders=0, syncs=0
            )
            totals = WindowResult()

            def advance(window: Window, done: WindowResult) -> None:
                totals.add(done)
                progress.update(
                    task,
                    advance=1,
                    description=f"pipeline {pipeline_id} up to {_local(window.end, zone)}",
                    orders=totals.orders_seen,
                    syncs=totals.syncs_requested,
                )

            result = await backfill(res, pipeline_id, start, end, on_window=advance)
    except (ReauthRequired, ConnectorError) as exc:
        console.print(f"backfill stopped: {exc}")
        return 1
    finally:
        if sender_set:
            jobs.set_sender(None)
        await res.aclose()
    t = result.totals
    print(
        f"pipeline {pipeline_id}: {result.windows} hour windows, {t.orders_seen} orders read, "
        f"{t.created} new, {t.changed} changed, {t.syncs_requested} syncs queued"
        + (f", {result.ran_here} run here" if result.ran_here else "")
    )
    return 0
