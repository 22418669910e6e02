"""The Celery configuration that the delivery guarantees rest on."""

from __future__ import annotations

from collections.abc import Callable

from conexapi.settings import Settings
from workers.celery_app import create_celery


def test_at_least_once_delivery_settings(settings_factory: Callable[..., Settings]) -> None:
    conf = create_celery(settings_factory()).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.enable_utc is True


def test_broker_follows_the_settings(settings_factory: Callable[..., Settings]) -> None:
    embedded = create_celery(settings_factory()).conf
    assert embedded.broker_url.startswith("memory://")
    production = create_celery(
        settings_factory(redis_url="redis://cache:6379/3", broker_visibility_timeout=1234)
    ).conf
    assert production.broker_url == "redis://cache:6379/3"
    assert production.broker_transport_options["visibility_timeout"] == 1234


def test_periodic_jobs_expire_before_they_pile_up(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(sweeper_interval_seconds=12)
    schedule = create_celery(settings).conf.beat_schedule
    sweeper = schedule["sweeper"]
    assert sweeper["task"] == "conexapi.sweep"
    assert sweeper["schedule"] == 12
    # A sweep not started within one interval is dropped: the next one does its work.
    assert 0 < sweeper["options"]["expires"] <= sweeper["schedule"]
