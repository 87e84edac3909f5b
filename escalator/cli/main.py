"""The `escalator` command, in the style of amtool and kubectl.

Data commands work on the daemon's database directly (`--database-url`) or through a
remote daemon's HTTP API (`--server URL --token T`), because an on-call engineer's laptop
does not hold the database: `escalator.cli.backend` (Local or Remote), same methods, same
views. This module holds the group and the admin verbs (serve, check-config, db); the data
verbs are in `escalator.cli.commands`.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from escalator.cli.commands import alerts as commands_alerts
from escalator.cli.commands import console as commands_console
from escalator.cli.commands import incidents as commands_incidents
from escalator.cli.commands import paging as commands_paging
from escalator.cli.commands import roster as commands_roster
from escalator.cli.commands import sources as commands_sources
from escalator.cli.support import (
    DEFAULT_CONFIG,
    DEFAULT_PORT,
    Context,
    pass_ctx,
    safe_url,
)

if TYPE_CHECKING:
    from escalator.config import Config
    from escalator.config import checks as config_checks

# Heavy imports (SQLAlchemy, Alembic, pydantic, uvicorn) happen inside the verbs that use
# them: `escalator --help` and `escalator list` must not pay for `serve`.


# Set by `run`: the collector is tuned only in a process that is this command alone, never
# in one that calls `main` in-process (a test runner, click's CliRunner).
_own_process = False


def run() -> None:
    """The `escalator` command (console script and `python -m escalator`)."""
    global _own_process
    _own_process = True
    main()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="ESCALATOR_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help=f"Configuration file (default: {DEFAULT_CONFIG} if present).",
)
@click.option(
    "--database-url",
    envvar="ESCALATOR_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="sqlite:///PATH or postgresql://... (postgres:// works too); "
    "default: a SQLite file under $XDG_STATE_HOME/escalator.",
)
@click.option(
    "--server",
    envvar="ESCALATOR_SERVER",
    show_envvar=True,
    metavar="URL",
    help="Talk to a daemon's HTTP API at this URL instead of the database.",
)
@click.option(
    "--token",
    envvar="ESCALATOR_API_TOKEN",
    show_envvar=True,
    help="API bearer token for --server.",
)
@click.option(
    "--tz",
    envvar="ESCALATOR_TZ",
    show_envvar=True,
    metavar="ZONE",
    help="Time zone of times in tables (IANA, e.g. Europe/Berlin); default: the acting "
    "person's zone in the config, else this machine's. JSON is always UTC.",
)
@click.version_option(package_name="escalator")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    database_url: str | None,
    server: str | None,
    token: str | None,
    tz: str | None,
) -> None:
    """escalator: make sure a human answers the alert."""
    ctx.obj = Context(config_path, database_url, server, token, tz)
    # A one-shot verb lives for well under a second, and the cyclic collector spends a
    # third of `escalator list` (0.56 s -> 0.38 s, bench/cli_startup.py) walking the
    # objects SQLAlchemy and pydantic make at import, during the imports and once more at
    # exit, to free memory the OS takes back anyway. Reference counting still frees
    # everything acyclic; only `serve`, which runs for months, keeps the collector.
    # Frozen objects are skipped by the exit pass; atexit handlers and flushes still run.
    if _own_process and ctx.invoked_subcommand != "serve":
        gc.disable()
        ctx.call_on_close(gc.freeze)


@main.command()
# Also accepted after `serve` (`escalator serve --config FILE`), as the README shows.
@click.option(
    "--config",
    "serve_config",
    type=click.Path(dir_okay=False),
    help="Configuration file (same as the global --config).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; a non-loopback address needs server.webhook_token "
    "and server.api_token in the config.",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="TCP port for the webhook, API, console and metrics.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log verbosity (stderr); debug also logs every HTTP request.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True),
    help="Serve HTTPS with this certificate (PEM); needs --tls-key.",
)
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its key (PEM).")
@pass_ctx
def serve(
    ctx: Context,
    serve_config: str | None,
    host: str,
    port: int,
    log_level: str,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run the daemon: webhook, engine, sender, API."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from escalator.config import checks as config_checks

    if serve_config is not None:
        ctx.config_path = serve_config

    from escalator.daemon import build_daemon
    from escalator.web.app import create_app, is_loopback
    from escalator.web.server import settle_heap, uvicorn_options

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    log = logging.getLogger("escalator")
    config = ctx.config()
    assert config is not None
    # The same checks as `check-config` (config/checks.py): what they call an error, serve
    # refuses; warnings go to the log.
    findings = _findings(config, loopback=is_loopback(host))
    source = ctx.config_path or DEFAULT_CONFIG
    for finding in config_checks.warnings(findings):
        log.warning("%s", finding.render(source))
    refused = config_checks.errors(findings)
    if refused:
        raise click.ClickException(
            "refusing to start:\n" + "\n".join(f.render(source) for f in refused)
        )
    try:
        daemon = build_daemon(config, ctx.database_url)
    except DBAPIError as exc:
        raise click.ClickException(f"cannot open {safe_url(ctx.database_url)}: {exc.orig}") from exc
    except ValueError as exc:  # a channel whose secret or public_url is missing
        raise click.ClickException(f"{ctx.config_path or DEFAULT_CONFIG}: {exc}") from exc
    log.info(
        "database %s, schema current; %d policies, %d people",
        safe_url(ctx.database_url),
        len(config.policies),
        len(config.people),
    )
    log.info("channels: %s", ", ".join(sorted(daemon.sender.methods)) or "none")
    scheme = "https" if tls_cert else "http"
    log.info("Alertmanager webhook: %s://%s:%d/webhooks/alertmanager", scheme, host, port)
    # uvicorn shuts down gracefully on SIGTERM (delivery hands back what it has in flight
    # within engine.shutdown_grace), then raises the signal again with the handler that was
    # there before it: make that a clean exit 0, as systemd and Kubernetes expect.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    terminated = False
    app = create_app(daemon, bind_host=host)
    if _own_process:
        settle_heap()
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=log_level == "debug",
            # Senders that insist on https (PagerDuty's clients) can reach it directly.
            ssl_certfile=tls_cert,
            ssl_keyfile=tls_key,
            # h11 with a header deadline, keep-alive and concurrency bounds (web/server.py).
            **uvicorn_options(config.server),
        )
    except SystemExit as exc:
        terminated = exc.code == 0
        if not terminated:
            raise
    finally:
        daemon.db.dispose()
    if terminated:
        # Delivery has stopped and handed its pages back. A send abandoned at its deadline
        # may still sit in a blocking call in a daemon thread, and interpreter teardown
        # can then take a second or more: leave now, within the grace.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@main.command("check-config")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@pass_ctx
def check_config(ctx: Context, files: tuple[str, ...]) -> None:
    """Validate configuration files; every error names the file, the path and the reason."""
    from escalator.config import ConfigError, load_config
    from escalator.config import checks as config_checks

    paths = list(files) or [ctx.config_path or DEFAULT_CONFIG]
    bad = False
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            click.echo(exc.render(), err=True)
            bad = True
            continue
        findings = _findings(config)
        refused = config_checks.errors(findings)
        for finding in refused:
            click.echo(finding.render(path), err=True)
        bad |= bool(refused)
        if not refused:
            click.echo(
                f"{path}: ok ({len(config.people)} people, {len(config.rotations)} rotations, "
                f"{len(config.policies)} policies, {len(config.routes)} routes)"
            )
        for finding in config_checks.warnings(findings):
            click.echo(finding.render(path), err=True)
    if bad:
        sys.exit(1)


def _findings(config: Config, loopback: bool | None = None) -> list[config_checks.Finding]:
    """config/checks.py plus the roster's coverage gaps in the next weeks: what serve and
    check-config both act on."""
    from escalator.config import checks as config_checks
    from escalator.roster.schedule import roster_warnings

    gaps = roster_warnings(config, datetime.now(UTC))
    return config_checks.check(config, loopback=loopback, extra_warnings=gaps)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to the current version (creates a SQLite file)."""
    from sqlalchemy.exc import DBAPIError

    from escalator.store.db import make_engine, upgrade

    url = ctx.database_url
    engine = make_engine(url)
    try:
        upgrade(engine)
    except DBAPIError as exc:
        raise click.ClickException(f"cannot open {safe_url(url)}: {exc.orig}") from exc
    finally:
        engine.dispose()
    click.echo(f"{safe_url(url)}: schema is current")


# One registration style: each command module lists its commands in COMMANDS.
for _module in (
    commands_alerts,
    commands_roster,
    commands_incidents,
    commands_paging,
    commands_sources,
    commands_console,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()
