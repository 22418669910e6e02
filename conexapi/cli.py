"""The ``conexapi`` command: one entry point for every process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from conexapi.settings import Settings, env_variable, get_settings

if TYPE_CHECKING:
    from pydantic import ValidationError

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="ConexAPI processes and tools.")


#: The largest id a database integer holds: larger ones are refused as options, not overflowed.
MAX_ID = 2**63 - 1


def _fail(command: str, message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: no traceback for what the user can fix."""
    typer.echo(f"{command}: {message}", err=True)
    raise typer.Exit(code)


@cli.callback()
def _check_configuration(ctx: typer.Context) -> None:
    # Every command reads the settings; a bad one is reported here in one line, not as
    # pydantic's traceback from wherever it is first read. init-env writes them.
    if ctx.invoked_subcommand == "init-env" or "--help" in sys.argv[1:]:
        return
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        _fail("configuration", _settings_errors(exc), 2)


def _settings_errors(exc: ValidationError) -> str:
    """pydantic's errors as one line, by variable name; never the values (secrets)."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{env_variable(error['loc'])}: {message}" if error["loc"] else message)
    return "; ".join(parts)


def _require_schema(command: str, settings: Settings) -> None:
    """Stop with one line when the database is out of reach or not migrated: a command
    that uses it would otherwise end in a traceback ("no such table: users")."""
    import asyncio

    from sqlalchemy.exc import DBAPIError

    from conexapi.db import create_engine
    from conexapi.migrate import schema_problem

    async def check() -> str | None:
        engine = create_engine(settings, pool=False)
        try:
            return await schema_problem(engine)
        finally:
            await engine.dispose()

    try:
        problem = asyncio.run(check())
    except (DBAPIError, OSError) as exc:
        problem = _unreachable(settings, exc)
    if problem is not None:
        _fail(command, problem)


def _unreachable(settings: Settings, exc: BaseException) -> str:
    """One line: which database (never its password) and the driver's first line."""
    from sqlalchemy.engine import make_url

    where = make_url(settings.database_url).render_as_string(hide_password=True)
    reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
    return f"cannot use the database {where}: {reason}"


@cli.command()
def api(
    host: str | None = typer.Option(None, help="Bind address (default CONEXAPI_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (default CONEXAPI_API_PORT)."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
) -> None:
    """Serve the HTTP API (webhooks, OAuth callbacks, /api/v1, health, metrics). Without
    CONEXAPI_REDIS_URL it also runs the worker and beat, in threads of this process."""
    from conexapi.serving import PortUnavailable, listen, run_api, server_config

    settings = get_settings()
    if workers > 1 and not settings.redis_url:
        # Each process would run its own worker and beat on one schedule file.
        _fail(
            "api",
            "--workers above 1 needs CONEXAPI_REDIS_URL (without Redis the worker and "
            "beat run inside the one API process)",
            code=2,
        )
    host = host or settings.api_host
    port = port or settings.api_port
    try:
        sock = listen(host, port)  # before the application starts, so a taken port stops us
    except PortUnavailable as exc:
        _fail("api", f"{exc}; stop what holds it or choose another with --port")
    typer.echo(f"api: listening on http://{host}:{port}", err=True)
    config = server_config(
        "conexapi.app:create_app_from_env",
        settings,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
    )
    if not run_api(config, sock):
        raise typer.Exit(3)  # the application failed to start (uvicorn's code for it)


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
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import DBAPIError

    from conexapi.migrate import CharsetError, upgrade

    settings = get_settings()
    try:
        notes = upgrade(settings.database_url, revision)
    except CharsetError as exc:
        _fail("migrate", str(exc))
    except CommandError as exc:  # e.g. a revision that does not exist
        _fail("migrate", f"{exc}; `conexapi migrate` with no argument upgrades to the latest")
    except (DBAPIError, OSError) as exc:
        _fail("migrate", f"{_unreachable(settings, exc)}; check CONEXAPI_DATABASE_URL")
    for note in notes:
        typer.echo(note)
    typer.echo(f"database at {revision}")


@cli.command("create-user")
def create_user(
    email: str = typer.Option(..., help="The user's email (their login)."),
    role: str = typer.Option("admin", help="admin, operator or viewer."),
    merchant: list[int] = typer.Option(
        [],
        "--merchant",
        help="A merchant id the user may see (repeat; not for admins).",
        min=1,
        max=MAX_ID,
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
    settings = get_settings()
    _require_schema("create-user", settings)
    password = os.environ.get(password_env) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        user_id = asyncio.run(create_user_command(settings, email, chosen, merchant, password))
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

    settings = get_settings()
    _require_schema("rotate-keys", settings)
    report = asyncio.run(rotate_all_keys(settings))
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
    pipeline: int = typer.Option(..., "--pipeline", help="Pipeline id.", min=1, max=MAX_ID),
    since: str = typer.Option(
        ..., help="Start: YYYY-MM-DD (a day where the pipeline is) or an ISO date-time with offset."
    ),
    until: str | None = typer.Option(
        None, help="End (exclusive; a YYYY-MM-DD includes that day). Default: now."
    ),
) -> None:
    """Reconcile a past range: sync every order updated in it that the product lacks or
    has older. A range already synced requests nothing; the cursor is left alone."""
    import asyncio

    from conexapi.reconcile.backfill import BackfillError, parse_moment, run_backfill_command

    settings = get_settings()
    _require_schema("backfill", settings)
    try:
        start = parse_moment(since)
        end = parse_moment(until, end=True) if until else None
        code = asyncio.run(run_backfill_command(settings, pipeline, start, end))
    except BackfillError as exc:
        typer.echo(f"backfill: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@cli.command("init-env")
def init_env(
    path: Path = typer.Option(Path(".env"), help="The file to write."),
    force: bool = typer.Option(False, "--force", help="Replace the file if it exists."),
) -> None:
    """Write a .env with fresh secrets for a production install.

    CONEXAPI_ENV=production, a new CONEXAPI_SECRET_KEY, a new Fernet key for
    CONEXAPI_ENCRYPTION_KEYS and the MariaDB passwords docker-compose.yml asks for. An
    existing file is never replaced without --force.
    """
    from conexapi.kit.env_file import production_env, write_new

    try:
        write_new(path, production_env(), replace=force)
    except FileExistsError:
        _fail(
            "init-env",
            f"{path} exists; keep it, or replace it with --force (the data encrypted under "
            "its CONEXAPI_ENCRYPTION_KEYS can no longer be read without them)",
        )
    except OSError as exc:
        _fail("init-env", f"cannot write {path}: {exc.strerror or exc}")
    typer.echo(
        f"wrote {path} (readable by you only): CONEXAPI_ENV=production with a fresh secret "
        "key and encryption key; set CONEXAPI_DATABASE_URL, CONEXAPI_REDIS_URL and "
        "CONEXAPI_PUBLIC_URL in it (or use docker compose), then run `conexapi migrate`"
    )


@cli.command()
def sandbox(
    host: str | None = typer.Option(None, help="Bind address (default CONEXAPI_SANDBOX_HOST)."),
) -> None:
    """Serve the simulator of every installed connector (Mercado Libre, Siigo, ...)."""
    import asyncio

    from conexapi.sandboxes import run_sandboxes
    from conexapi.serving import PortUnavailable

    try:
        asyncio.run(run_sandboxes(get_settings(), host))
    except PortUnavailable as exc:
        _fail("sandbox", f"{exc}; free it or set CONEXAPI_SANDBOX_<NAME>_PORT")


@cli.command()
def demo(
    orders: int = typer.Option(24, help="Orders the marketplace sandbox generates."),
    seed: int = typer.Option(7, help="Seed for the generated orders."),
    exit_after: bool = typer.Option(
        False, "--exit", help="Stop after the table instead of serving on."
    ),
    port: int | None = typer.Option(
        None, help="API port (default CONEXAPI_API_PORT, or a free one if that is taken)."
    ),
    sandbox_port: list[str] = typer.Option(
        [],
        "--sandbox-port",
        metavar="NAME=PORT",
        help="A sandbox's port as NAME=PORT, NAME a connector (repeat; default "
        "CONEXAPI_SANDBOX_<NAME>_PORT, "
        "or a free one if that is taken).",
    ),
) -> None:
    """The main job end to end on the embedded default: sandboxes, API, worker, in one
    process on SQLite; orders flow from Mercado Libre to Siigo while you watch."""
    from conexapi.demo import SANDBOXES, run_demo
    from conexapi.serving import PortUnavailable

    ports = _named_ports(sandbox_port, SANDBOXES)
    if port is not None:
        ports["api"] = port
    try:
        code = run_demo(orders=orders, seed=seed, exit_after=exit_after, ports=ports)
    except PortUnavailable as exc:
        _fail("demo", f"{exc}; free it or choose another with --port or --sandbox-port")
    raise typer.Exit(code)


def _named_ports(values: list[str], names: tuple[str, ...]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for value in values:
        name, _, number = value.partition("=")
        if name not in names or not number.isdigit() or not 0 < int(number) < 65536:
            raise typer.BadParameter(
                f"{value!r}: give NAME=PORT with NAME one of {', '.join(names)}",
                param_hint="--sandbox-port",
            )
        ports[name] = int(number)
    return ports


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
