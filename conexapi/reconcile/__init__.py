"""Scheduled jobs that make the books right: reconcile, reports, housekeeping, backfill."""
