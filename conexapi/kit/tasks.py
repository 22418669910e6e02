"""Every Celery task name, in one place.

The core enqueues jobs by these names (:mod:`conexapi.kit.jobs`) without importing Celery;
``workers/tasks.py`` registers one task under each, and ``workers/celery_app.py`` schedules
the periodic ones. A name is the wire format of every queued message: renaming one strands
the messages already queued under the old name.
"""

from __future__ import annotations

from typing import Final

#: A round trip through a worker (database, Redis, its loop), for tests and operators.
PROBE: Final = "conexapi.probe"
#: Turns inbox events into runs; its arguments are event ids.
PROCESS_EVENT: Final = "conexapi.process_event"
#: Runs one order's sync; its argument is a run id.
EXECUTE_RUN: Final = "conexapi.execute_run"
#: Periodic: sends lost jobs again, starts due retries, resumes orders that waited.
SWEEP: Final = "conexapi.sweep"
#: Periodic: fans out one RECONCILE_PIPELINE per active pipeline.
RECONCILE: Final = "conexapi.reconcile"
#: Reconciles one pipeline; its argument is a pipeline id.
RECONCILE_PIPELINE: Final = "conexapi.reconcile_pipeline"
#: Periodic: one BUILD_REPORT per pipeline for yesterday and today.
RECONCILIATION_REPORTS: Final = "conexapi.reconciliation_reports"
#: Builds one day's report; its arguments are a pipeline id and the day's ordinal.
BUILD_REPORT: Final = "conexapi.build_report"
#: Periodic: refreshes marketplace access tokens before they expire.
REFRESH_TOKENS: Final = "conexapi.refresh_tokens"
#: Periodic: erases inbox payloads past their retention.
PRUNE_INBOX: Final = "conexapi.prune_inbox"
