"""The `escalator` command, in the style of amtool and kubectl.

Data commands work on the daemon's database directly (`--database-url`) or through a
remote daemon's HTTP API (`--server URL --token T`), because an on-call engineer's laptop
does not hold the database. Both paths print the same views.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy.exc import DBAPIError

from escalator import commands_incidents, commands_paging, commands_roster, views
from escalator.alerts import Paging, PolicyCache, act, load_overrides, open_alert_ids
from escalator.cli_support import (
    DEFAULT_CONFIG,
    DEFAULT_PORT,
    Context,
    actor,
    age,
    output_option,
    parse_time,
    pass_ctx,
    print_json,
    safe_url,
    table,
)
from escalator.config import Config, ConfigError, load_config
from escalator.durations import parse_duration
from escalator.machine import Ack, Event, Resolve
from escalator.store.db import (
    make_engine,
    transaction,
    upgrade,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    envvar="ESCALATOR_CONFIG",
    type=click.Path(dir_okay=False),
    help=f"Configuration file (default: {DEFAULT_CONFIG} if present).",
)
@click.option(
    "--database-url",
    envvar="ESCALATOR_DATABASE_URL",
    help="SQLAlchemy URL; default: a SQLite file under $XDG_STATE_HOME/escalator.",
)
@click.option(
    "--server",
    envvar="ESCALATOR_SERVER",
    help="Talk to a daemon's HTTP API at this URL instead of the database.",
)
@click.option("--token", envvar="ESCALATOR_API_TOKEN", help="API bearer token for --server.")
@click.version_option(package_name="escalator")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    database_url: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """escalator: make sure a human answers the alert."""
    ctx.obj = Context(config_path, database_url, server, token)


@main.command()
# Also accepted after `serve` (`escalator serve --config FILE`), as the README shows.
@click.option(
    "--config",
    "serve_config",
    type=click.Path(dir_okay=False),
    help="Configuration file (same as the global --config).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@pass_ctx
def serve(ctx: Context, serve_config: str | None, host: str, port: int, log_level: str) -> None:
    """Run the daemon: webhook, engine, sender, API."""
    import uvicorn

    if serve_config is not None:
        ctx.config_path = serve_config

    from escalator.daemon import build_daemon
    from escalator.web.app import create_app, is_loopback

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    log = logging.getLogger("escalator")
    config = ctx.config()
    assert config is not None
    loopback = is_loopback(host)
    for name, secret in (
        ("webhook_token", config.server.webhook_token),
        ("api_token", config.server.api_token),
    ):
        if secret is not None and secret.resolve() is not None:
            continue
        where = f" ({secret.describe()} is not set)" if secret else ""
        if not loopback:
            raise click.ClickException(
                f"server.{name} has no value{where}: refusing to serve unauthenticated on {host}; "
                "set the token or bind to 127.0.0.1"
            )
        log.warning(
            "server.%s has no value%s: accepting unauthenticated requests from "
            "loopback clients only",
            name,
            where,
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
    log.info("Alertmanager webhook: http://%s:%d/webhooks/alertmanager", host, port)
    try:
        uvicorn.run(
            create_app(daemon),
            host=host,
            port=port,
            log_level=log_level,
            access_log=log_level == "debug",
        )
    finally:
        daemon.db.dispose()


def _act_locally(ctx: Context, ids: list[int] | None, event: Event) -> list[dict[str, Any]]:
    engine, factory = ctx.local()
    now = datetime.now(UTC)
    try:
        with transaction(factory) as session:
            targets = ids if ids is not None else open_alert_ids(session)
            paging = Paging(None, frozenset())
            outcomes = act(session, targets, event, paging, PolicyCache(), now)
    finally:
        engine.dispose()
    return [o.__dict__ for o in outcomes]


def _report(outcomes: list[dict[str, Any]], verb: str) -> None:
    if not outcomes:
        click.echo(f"nothing to {verb}")
    failed = False
    for o in outcomes:
        mark = "ok" if o["changed"] else "--"
        click.echo(f"{mark} #{o['alert_id']}: {o['message']}")
        failed |= o["status"] == "unknown"
    if failed:
        sys.exit(1)


@main.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Acknowledge every triggered alert.")
@click.option(
    "--as", "as_", metavar="PERSON", help="Who acknowledges (default: $ESCALATOR_USER or login)."
)
@click.option(
    "--for", "for_", metavar="DURATION", help="Snooze: the ack ends after this (e.g. 30m)."
)
@pass_ctx
def ack(ctx: Context, ids: tuple[int, ...], all_: bool, as_: str | None, for_: str | None) -> None:
    """Acknowledge alerts: stop their escalation."""
    if bool(ids) == all_:
        raise click.UsageError("give alert IDs or --all")
    who = actor(as_, ctx)
    until = None
    if for_:
        try:
            until = datetime.now(UTC) + parse_duration(for_)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from exc
    if ctx.server:
        body: dict[str, Any] = {"ids": list(ids), "all": all_, "by": who}
        if until:
            body["until"] = until.isoformat()
        outcomes = ctx.http("POST", "/api/v1/alerts/ack", json=body)
    else:
        outcomes = _act_locally(
            ctx, None if all_ else list(ids), Ack(by=who, via="cli", until=until)
        )
    _report(outcomes, "acknowledge")


@main.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option(
    "--as", "as_", metavar="PERSON", help="Who resolves (default: $ESCALATOR_USER or login)."
)
@pass_ctx
def resolve(ctx: Context, ids: tuple[int, ...], as_: str | None) -> None:
    """Resolve alerts by hand (Alertmanager resolves them too when they clear)."""
    who = actor(as_, ctx)
    if ctx.server:
        outcomes = ctx.http("POST", "/api/v1/alerts/resolve", json={"ids": list(ids), "by": who})
    else:
        outcomes = _act_locally(ctx, list(ids), Resolve(by=who, via="cli"))
    _report(outcomes, "resolve")


@main.command("list")
@click.option("--all", "all_", is_flag=True, help="Include resolved alerts.")
@output_option
@pass_ctx
def list_(ctx: Context, all_: bool, output: str) -> None:
    """Open alerts: state, level and next escalation."""
    if ctx.server:
        alerts = ctx.http("GET", "/api/v1/alerts", params={"all": str(all_).lower()})
    else:
        engine, factory = ctx.local()
        with transaction(factory) as session:
            alerts = views.list_alerts(session, include_resolved=all_)
        engine.dispose()
    if output == "json":
        print_json(alerts)
        return
    if not alerts:
        click.echo("no open alerts" if not all_ else "no alerts")
        return
    rows = [
        [
            f"#{a['id']}",
            a["status"],
            str(a["level"]),
            a["severity"] or "-",
            a["alertname"],
            age(a["opened_at"]),
            age(a["next_action_at"]) if a["status"] != "resolved" else "-",
            a["acked_by"] or a["resolved_by"] or "-",
        ]
        for a in alerts
    ]
    click.echo(table(rows, ["ID", "STATE", "LEVEL", "SEVERITY", "ALERT", "OPENED", "NEXT", "BY"]))


@main.command()
@click.argument("alert_id", type=int)
@output_option
@pass_ctx
def show(ctx: Context, alert_id: int, output: str) -> None:
    """One alert and its timeline."""
    if ctx.server:
        shown = ctx.http("GET", f"/api/v1/alerts/{alert_id}")
    else:
        engine, factory = ctx.local()
        with transaction(factory) as session:
            shown = views.show_alert(session, alert_id)
        engine.dispose()
        if shown is None:
            raise click.ClickException(f"no alert {alert_id}")
    if output == "json":
        print_json(shown)
        return
    click.echo(
        f"#{shown['id']} {shown['alertname']} [{shown['severity'] or '-'}] "
        f"{shown['status']}, level {shown['level']}, policy {shown['policy']}"
    )
    if shown["summary"]:
        click.echo(f"  {shown['summary']}")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(shown["labels"].items()))
    click.echo(f"  labels: {labels}")
    if shown["status"] != "resolved" and shown["next_action_at"]:
        click.echo(f"  next escalation: {shown['next_action_at']} ({age(shown['next_action_at'])})")
    click.echo("timeline:")
    for entry in shown["timeline"]:
        who = f" [{entry['actor']}]" if entry["actor"] else ""
        # The space after the padded kind keeps long kinds (escalated_manually) apart.
        click.echo(f"  {entry['at']}  {entry['kind']:<14} {entry['detail']}{who}")


@main.command()
@click.option("--at", "at", help="When (ISO 8601, now, +2h); default now.")
@click.option("--role", "role", metavar="NAME", help="Only this role (or rotation).")
@output_option
@pass_ctx
def oncall(ctx: Context, at: str | None, role: str | None, output: str) -> None:
    """Who holds each rotation and role."""
    when = parse_time(at) or datetime.now(UTC)
    if ctx.server:
        rows = ctx.http("GET", "/api/v1/oncall", params={"at": when.isoformat()})
    else:
        config = ctx.config()
        assert config is not None
        overrides = []
        try:
            engine, factory = ctx.local()
            with transaction(factory) as session:
                overrides = load_overrides(session, when)
            engine.dispose()
        except click.ClickException as exc:
            click.echo(f"warning: overrides not read ({exc.message})", err=True)
        rows = views.oncall(config, when, overrides)
    if role is not None:
        rows = [r for r in rows if r["name"] == role]
        if not rows:
            raise click.BadParameter(f"no role or rotation {role!r}", param_hint="--role")
    if output == "json":
        print_json(rows)
        return
    click.echo(f"on call at {when:%Y-%m-%d %H:%M} UTC")
    cells = [
        [
            r["kind"],
            r["name"],
            ", ".join(r["people"]) or "NOBODY",
            (r["until"] or "-") + (" (override)" if r["override"] else ""),
        ]
        for r in rows
    ]
    click.echo(table(cells, ["KIND", "NAME", "WHO", "UNTIL"]))


@main.command("check-config")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@pass_ctx
def check_config(ctx: Context, files: tuple[str, ...]) -> None:
    """Validate configuration files; every error names the file, the path and the reason."""
    paths = list(files) or [ctx.config_path or DEFAULT_CONFIG]
    bad = False
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            click.echo(exc.render(), err=True)
            bad = True
            continue
        click.echo(
            f"{path}: ok ({len(config.people)} people, {len(config.rotations)} rotations, "
            f"{len(config.policies)} policies, {len(config.routes)} routes)"
        )
        for warning in config_warnings(config):
            click.echo(f"{path}: warning: {warning}", err=True)
    if bad:
        sys.exit(1)


def config_warnings(config: Config) -> list[str]:
    """Things that are valid but likely wrong."""
    warnings = []
    catch_all = any(not r.match and not r.match_re for r in config.routes)
    if not catch_all and not config.default_policy:
        warnings.append(
            "no catch-all route and no default_policy: alerts matching no route and "
            "with a severity that names no policy are not tracked"
        )
    for name in ("webhook_token", "api_token"):
        secret = getattr(config.server, name)
        if secret is None:
            warnings.append(f"server.{name} is not set: only loopback clients will be accepted")
        elif secret.resolve() is None:
            warnings.append(f"server.{name}: {secret.describe()} has no value here")
    from escalator.schedule import roster_warnings  # coverage gaps in the next weeks

    warnings.extend(roster_warnings(config, datetime.now(UTC)))
    return warnings


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the schema to the current version."""
    engine = make_engine(ctx.database_url)
    try:
        upgrade(engine)
    except DBAPIError as exc:
        raise click.ClickException(f"cannot open {safe_url(ctx.database_url)}: {exc.orig}") from exc
    finally:
        engine.dispose()
    click.echo(f"{safe_url(ctx.database_url)}: schema is current")


# The roster commands (override, schedule, simulate) register themselves on `main`.
for _module in (commands_roster, commands_paging, commands_incidents):
    _module.register(main)


if __name__ == "__main__":
    main()
