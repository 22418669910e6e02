"""The ``conexapi`` command: one entry point for every process."""

from __future__ import annotations

import typer

from conexapi.settings import get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="ConexAPI processes and tools.")


@cli.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default CONEXAPI_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default CONEXAPI_API_PORT)."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
) -> None:
    """Serve the HTTP API (webhooks, OAuth callbacks, /api/v1, health, metrics). Without
    CONEXAPI_REDIS_URL it also runs the worker and beat, in threads of this process."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        # Each process would run its own worker and beat on one schedule file.
        typer.echo(
            "api: --workers above 1 needs CONEXAPI_REDIS_URL (without Redis the worker and "
            "beat run inside the one API process)",
            err=True,
        )
        raise typer.Exit(2)
    uvicorn.run(
        "conexapi.app:create_app_from_env",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        # The app reads X-Forwarded-* itself, from CONEXAPI_TRUSTED_PROXIES only; uvicorn
        # would also believe 127.0.0.1 (or FORWARDED_ALLOW_IPS) by default.
        proxy_headers=False,
        access_log=False,
        log_config=None,
    )


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    concurrency: int | None = typer.Option(None, help="Child processes."),
    pool: str = typer.Option("prefork", help="Celery pool (prefork, solo)."),
) -> None:
    """Run a Celery worker (extra arguments go to Celery); it serves its metrics on
    CONEXAPI_WORKER_METRICS_PORT."""
    from workers.metrics import WorkerMetricsError, open_worker_metrics

    settings = get_settings()
    # Before the tasks' modules are imported: their metrics must be made multiprocess.
    try:
        metrics = open_worker_metrics(settings)
    except WorkerMetricsError as exc:
        typer.echo(f"worker: {exc}", err=True)
        raise typer.Exit(2) from None

    from celery.signals import worker_ready

    from workers import tasks  # noqa: F401
    from workers.celery_app import app

    if metrics is not None:
        # Once the pool has forked its children: the serving thread is not copied into them.
        worker_ready.connect(lambda **_: metrics.serve(), weak=False)
    argv = [
        "worker",
        "--loglevel",
        settings.log_level,
        "--pool",
        pool,
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        *ctx.args,
    ]
    try:
        app.worker_main(argv)
    finally:
        if metrics is not None:
            metrics.close()


@cli.command()
def beat(
    schedule: str = typer.Option("celerybeat-schedule", help="Beat's state file."),
) -> None:
    """Run Celery beat: sweeper and the other periodic jobs."""
    from workers import tasks  # noqa: F401
    from workers.celery_app import app

    app.start(["beat", "--loglevel", get_settings().log_level, "--schedule", schedule])


@cli.command()
def migrate(
    revision: str = typer.Argument("head", help="Target revision."),
) -> None:
    """Upgrade the database schema."""
    from conexapi.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@cli.command("create-user")
def create_user(
    email: str = typer.Option(..., help="The user's email (their login)."),
    role: str = typer.Option("admin", help="admin, operator or viewer."),
    merchant: list[int] = typer.Option(
        [], "--merchant", help="A merchant id the user may see (repeat; not for admins)."
    ),
    password_env: str = typer.Option(
        "CONEXAPI_NEW_USER_PASSWORD", help="Environment variable holding the password."
    ),
) -> None:
    """Create a user (the first admin, for one). The password comes from the environment
    variable named by --password-env, or is asked for without echo."""
    import asyncio
    import os

    from conexapi.auth.bootstrap import create_user_command
    from conexapi.kit.errors import AppError
    from conexapi.models import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter("admin, operator or viewer", param_hint="--role") from None
    password = os.environ.get(password_env) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        user_id = asyncio.run(
            create_user_command(get_settings(), email, chosen, merchant, password)
        )
    except AppError as exc:
        typer.echo(f"create-user: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"user {user_id} created ({email}, {chosen.value})")


@cli.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored secret with the newest key of CONEXAPI_ENCRYPTION_KEYS.

    Put the new key first in the list on every process, run this, and drop the old key
    once it reports nothing unreadable. Safe to run while the service runs, and again.
    """
    import asyncio

    from conexapi.connections.rotation import rotate_all_keys

    report = asyncio.run(rotate_all_keys(get_settings()))
    typer.echo(
        f"rotated {report.rotated}, already current {report.already_current}, "
        f"changed meanwhile {report.changed_meanwhile}, consent states rotated "
        f"{report.states_rotated} (expired purged {report.states_purged})"
    )
    if report.unreadable:
        typer.echo(
            f"{len(report.unreadable)} connection(s) no configured key opens: "
            + ", ".join(str(i) for i in report.unreadable),
            err=True,
        )
        raise typer.Exit(1)


@cli.command()
def backfill(
    pipeline: int = typer.Option(..., "--pipeline", help="Pipeline id."),
    since: str = typer.Option(
        ..., help="Start: YYYY-MM-DD (a Colombian day) or an ISO date-time with offset."
    ),
    until: str | None = typer.Option(
        None, help="End (exclusive; a YYYY-MM-DD includes that day). Default: now."
    ),
) -> None:
    """Reconcile a past range: sync every order updated in it that the product lacks or
    has older. A range already synced requests nothing; the cursor is left alone."""
    import asyncio

    from conexapi.reconcile.backfill import BackfillError, parse_moment, run_backfill_command

    try:
        start = parse_moment(since)
        end = parse_moment(until, end=True) if until else None
        code = asyncio.run(run_backfill_command(get_settings(), pipeline, start, end))
    except BackfillError as exc:
        typer.echo(f"backfill: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@cli.command()
def sandbox(
    host: str | None = typer.Option(None, help="Bind address (default CONEXAPI_SANDBOX_HOST)."),
) -> None:
    """Serve the simulator of every installed connector (Mercado Libre, Siigo, ...)."""
    import asyncio

    from conexapi.sandboxes import run_sandboxes

    asyncio.run(run_sandboxes(get_settings(), host))


@cli.command()
def demo(
    orders: int = typer.Option(24, help="Orders the Mercado Libre sandbox generates."),
    seed: int = typer.Option(7, help="Seed for the generated orders."),
    exit_after: bool = typer.Option(
        False, "--exit", help="Stop after the table instead of serving on."
    ),
    port: int | None = typer.Option(None, help="API port (default 8000)."),
) -> None:
    """The main job end to end on the embedded default: sandboxes, API, worker, in one
    process on SQLite; orders flow from Mercado Libre to Siigo while you watch."""
    from conexapi.demo import run_demo

    raise typer.Exit(run_demo(orders=orders, seed=seed, exit_after=exit_after, port=port))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
