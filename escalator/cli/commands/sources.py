"""`escalator heartbeat list` and `escalator maintenance add|list|end`.

Like the alert commands, each works on the database (`--database-url`) or through a
daemon's HTTP API (`--server URL --token T`) and prints the same views.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from pydantic import ValidationError

from escalator.cli.support import (
    Context,
    actor,
    age,
    output_option,
    parse_time,
    pass_ctx,
    print_json,
    table,
)
from escalator.config import LabelMatcher
from escalator.config.durations import parse_duration
from escalator.store.db import transaction

# Heartbeats -------------------------------------------------------------------------------


@click.group()
def heartbeat() -> None:
    """Heartbeat monitors: who watches the watcher."""


@heartbeat.command("list")
@output_option
@pass_ctx
def heartbeat_list(ctx: Context, output: str) -> None:
    """Each heartbeat: last beat, when it falls due, state (ok, waiting, missed)."""
    if ctx.server:
        rows = ctx.http("GET", "/api/v1/heartbeats")
    else:
        from escalator.ingest.heartbeat_store import list_heartbeats

        config = ctx.config()
        assert config is not None
        engine, factory = ctx.local()
        try:
            with transaction(factory) as session:
                rows = list_heartbeats(session, config, datetime.now(UTC))
        finally:
            engine.dispose()
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no heartbeats configured (see `heartbeats:` in the config)")
        return
    cells = [
        [
            r["name"],
            r["state"].upper() if r["state"] == "missed" else r["state"],
            "+".join(r["fed_by"]),
            age(r["last_beat_at"]),
            age(r["due_at"]) if r["due_at"] else "-",
            f"#{r['alert_id']}" if r["alert_id"] else "-",
        ]
        for r in rows
    ]
    click.echo(table(cells, ["NAME", "STATE", "FED BY", "LAST BEAT", "DUE", "ALERT"]))


# Maintenance -----------------------------------------------------------------------------


@click.group()
def maintenance() -> None:
    """Maintenance windows: planned work that pages no one."""


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: use LABEL=VALUE", param_hint=option)
        out[key] = wanted
    return out


@maintenance.command("add")
@click.option("--match", "match", multiple=True, metavar="LABEL=VALUE", help="Repeatable.")
@click.option(
    "--match-re", "match_re", multiple=True, metavar="LABEL=REGEX", help="Anchored; repeatable."
)
@click.option("--for", "for_", metavar="DURATION", help="How long, from now (e.g. 2h).")
@click.option("--until", "until", metavar="TIME", help="When it ends (ISO 8601, +2h).")
@click.option("--reason", required=True, help="What the work is (shown on held alerts).")
@click.option("--as", "as_", metavar="PERSON", help="Who (default: $ESCALATOR_USER or login).")
@click.option(
    "--include-open",
    is_flag=True,
    help="Also hold matching alerts already escalating (by default they keep escalating).",
)
@output_option
@pass_ctx
def maintenance_add(
    ctx: Context,
    match: tuple[str, ...],
    match_re: tuple[str, ...],
    for_: str | None,
    until: str | None,
    reason: str,
    as_: str | None,
    include_open: bool,
    output: str,
) -> None:
    """Start a maintenance window now: matching alerts page no one until it ends."""
    if (for_ is None) == (until is None):
        raise click.UsageError("give exactly one of --for or --until")
    try:
        matcher = LabelMatcher(
            match=_pairs(match, "--match"), match_re=_pairs(match_re, "--match-re")
        )
    except ValidationError as exc:
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--match-re") from exc
    if not (matcher.match or matcher.match_re):
        raise click.UsageError("give at least one --match or --match-re")
    who = actor(as_, ctx)
    # The window starts at the daemon's (--server) or the database's time, not the laptop's:
    # a duration is sent as a duration. `--until` is absolute (`+2h` is read here).
    duration = None
    if for_ is not None:
        try:
            duration = parse_duration(for_)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from exc
    ends = parse_time(until)
    if ctx.server:
        body: dict[str, Any] = {
            "match": matcher.match,
            "match_re": matcher.match_re,
            "reason": reason,
            "by": who,
            "include_open": include_open,
        }
        body.update({"for": for_} if for_ is not None else {"until": ends and ends.isoformat()})
        created = ctx.http("POST", "/api/v1/maintenance", json=body)
    else:
        from escalator.services import maintenance as services
        from escalator.services.context import Actor, ServiceContext, ServiceError

        engine, factory = ctx.local()
        try:
            added = services.add(
                ServiceContext(factory, ctx.config(required=False)), Actor(who, "cli"),
                matcher, reason, for_=duration, until=ends, include_open=include_open,
            )  # fmt: skip
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            engine.dispose()
        created = added.as_dict()
    if output == "json":
        print_json(created)
        return
    click.echo(f"maintenance {created['id']} until {created['ends_at']} ({reason})")
    if created["held"]:
        held = ", ".join(f"#{i}" for i in created["held"])
        click.echo(f"holding alerts already open: {held}")


@maintenance.command("list")
@click.option("--all", "all_", is_flag=True, help="Include ended windows.")
@output_option
@pass_ctx
def maintenance_list(ctx: Context, all_: bool, output: str) -> None:
    """Current and scheduled maintenance windows (and the config's next occurrences)."""
    if ctx.server:
        rows = ctx.http("GET", "/api/v1/maintenance", params={"all": str(all_).lower()})
    else:
        from escalator.maintenance.store import list_windows

        config = ctx.config()
        assert config is not None
        engine, factory = ctx.local()
        try:
            with transaction(factory) as session:
                rows = list_windows(session, config, datetime.now(UTC), include_past=all_)
        finally:
            engine.dispose()
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no maintenance windows")
        return
    cells = []
    for r in rows:
        wanted = [f"{k}={v}" for k, v in sorted(r["match"].items())]
        wanted += [f"{k}=~{v}" for k, v in sorted(r["match_re"].items())]
        cells.append(
            [
                r["id"],
                r["state"],
                ",".join(wanted),
                age(r["starts_at"]),
                age(r["ends_at"]),
                str(r["holding"]),
                r["created_by"] or "config",
                r["reason"],
            ]
        )
    click.echo(table(cells, ["ID", "STATE", "MATCH", "STARTS", "ENDS", "HOLDING", "BY", "REASON"]))


@maintenance.command("end")
@click.argument("window_id", metavar="ID")
@click.option("--as", "as_", metavar="PERSON", help="Who (default: $ESCALATOR_USER or login).")
@pass_ctx
def maintenance_end(ctx: Context, window_id: str, as_: str | None) -> None:
    """End a window now: alerts it held that still fire start escalating."""
    try:
        number = int(window_id.lstrip("#"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{window_id!r}: a window id such as 3 (weekly windows of the config end on their own)",
            param_hint="ID",
        ) from exc
    who = actor(as_, ctx)
    if ctx.server:
        ended = ctx.http("POST", f"/api/v1/maintenance/{number}/end", json={"by": who})
    else:
        from escalator.services import maintenance as services
        from escalator.services.context import Actor, ServiceContext, ServiceError

        engine, factory = ctx.local()
        try:
            ended = services.end(
                ServiceContext(factory, ctx.config(required=False)), Actor(who, "cli"), number
            )
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            engine.dispose()
    click.echo(f"maintenance {ended['id']} ended at {ended['ends_at']}")


COMMANDS = [heartbeat, maintenance]
