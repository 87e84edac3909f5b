"""`escalator heartbeat list` and `escalator maintenance add|list|end`.

Like the alert commands, each works on the database (`--database-url`) or through a
daemon's HTTP API (`--server URL --token T`) and prints the same views.
"""

from __future__ import annotations

import click

from escalator.cli.support import (
    WINDOW_ID,
    Context,
    actor,
    age,
    output_option,
    parse_duration,
    parse_time,
    pass_ctx,
    print_json,
    table,
    when,
)

# Heartbeats -------------------------------------------------------------------------------


@click.group()
def heartbeat() -> None:
    """Heartbeat monitors: who watches the watcher."""


@heartbeat.command("list")
@output_option
@pass_ctx
def heartbeat_list(ctx: Context, output: str) -> None:
    """Each heartbeat: last beat, when it falls due, state (ok, waiting, missed)."""
    with ctx.backend() as backend:
        rows = backend.heartbeats()
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
            when(ctx, r["due_at"]),
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
    wanted, wanted_re = _pairs(match, "--match"), _pairs(match_re, "--match-re")
    if not (wanted or wanted_re):
        raise click.UsageError("give at least one --match or --match-re")
    who = actor(as_, ctx)
    # The window starts at the daemon's (--server) or the database's time, not the laptop's:
    # a duration is sent as a duration. `--until` is absolute (`+2h` is read here).
    if for_ is not None:
        parse_duration(for_, "--for")
    ends = parse_time(until)
    with ctx.backend() as backend:
        created = backend.add_maintenance(
            who, wanted, wanted_re, reason, for_, ends, include_open
        )
    if output == "json":
        print_json(created)
        return
    click.echo(f"maintenance {created['id']} until {when(ctx, created['ends_at'])} ({reason})")
    if created["held"]:
        held = ", ".join(f"#{i}" for i in created["held"])
        click.echo(f"holding alerts already open: {held}")


@maintenance.command("list")
@click.option("--all", "all_", is_flag=True, help="Include ended windows.")
@output_option
@pass_ctx
def maintenance_list(ctx: Context, all_: bool, output: str) -> None:
    """Current and scheduled maintenance windows (and the config's next occurrences)."""
    with ctx.backend() as backend:
        rows = backend.maintenance_windows(all_)
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
                when(ctx, r["starts_at"]),
                when(ctx, r["ends_at"]),
                str(r["holding"]),
                r["created_by"] or "config",
                r["reason"],
            ]
        )
    click.echo(table(cells, ["ID", "STATE", "MATCH", "STARTS", "ENDS", "HOLDING", "BY", "REASON"]))


@maintenance.command("end")
@click.argument("window_id", metavar="ID", type=WINDOW_ID)
@click.option("--as", "as_", metavar="PERSON", help="Who (default: $ESCALATOR_USER or login).")
@pass_ctx
def maintenance_end(ctx: Context, window_id: int, as_: str | None) -> None:
    """End a window now (ID as 3 or #3): alerts it held that still fire start escalating.

    Weekly windows of the config end on their own."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        ended = backend.end_maintenance(who, window_id)
    click.echo(f"maintenance {ended['id']} ended at {when(ctx, ended['ends_at'])}")


COMMANDS = [heartbeat, maintenance]
