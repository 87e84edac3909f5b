"""Alert verbs: `list`, `show`, `ack`, `snooze`, `resolve`, `escalate`, `oncall`.

Each works on the database or, with `--server`, through the daemon's API (`ctx.backend()`);
both end in the same service functions and print the same thing.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from escalator.cli.support import (
    ALERT_ID,
    Context,
    actor,
    age,
    output_option,
    parse_duration,
    parse_time,
    pass_ctx,
    print_json,
    table,
    warn,
    when,
)
from escalator.read.times import local_full, stamp_local
from escalator.text import escape

As = click.option(
    "--as", "as_", metavar="PERSON", help="Who acts (default: $ESCALATOR_USER or login)."
)


def _check_duration(value: str | None, name: str) -> None:
    if value is not None:
        parse_duration(value, name)


def _report(outcomes: list[dict[str, Any]], verb: str, output: str) -> None:
    """One line per alert (or the outcomes as JSON); exit 1 if an id named no alert."""
    failed = any(o["status"] == "unknown" for o in outcomes)
    if output == "json":
        print_json(outcomes)
    else:
        if not outcomes:
            click.echo(f"nothing to {verb}")
        for o in outcomes:
            mark = "ok" if o["changed"] else "--"
            click.echo(f"{mark} #{o['alert_id']}: {escape(o['message'])}")
    if failed:
        sys.exit(1)


@click.command()
@click.argument("ids", nargs=-1, type=ALERT_ID)
@click.option("--all", "all_", is_flag=True, help="Acknowledge every triggered alert.")
@As
@click.option(
    "--for", "for_", metavar="DURATION", help="Snooze: the ack ends after this (e.g. 30m)."
)
@output_option
@pass_ctx
def ack(
    ctx: Context,
    ids: tuple[int, ...],
    all_: bool,
    as_: str | None,
    for_: str | None,
    output: str,
) -> None:
    """Acknowledge alerts (IDs as `12` or `#12`): stop their escalation."""
    if bool(ids) == all_:
        raise click.UsageError("give alert IDs or --all")
    who = actor(as_, ctx)
    _check_duration(for_, "--for")
    with ctx.backend() as backend:
        outcomes = backend.acknowledge(who, None if all_ else list(ids), for_)
    _report(outcomes, "acknowledge", output)


@click.command()
@click.argument("ids", nargs=-1, type=ALERT_ID, required=True)
@click.option("--for", "for_", metavar="DURATION", required=True, help="How long (30m, 2h).")
@As
@output_option
@pass_ctx
def snooze(ctx: Context, ids: tuple[int, ...], for_: str, as_: str | None, output: str) -> None:
    """Acknowledge alerts for a while: escalation resumes after --for."""
    who = actor(as_, ctx)
    _check_duration(for_, "--for")
    with ctx.backend() as backend:
        outcomes = backend.snooze(who, list(ids), for_)
    _report(outcomes, "snooze", output)


@click.command()
@click.argument("ids", nargs=-1, type=ALERT_ID, required=True)
@As
@output_option
@pass_ctx
def resolve(ctx: Context, ids: tuple[int, ...], as_: str | None, output: str) -> None:
    """Resolve alerts by hand (Alertmanager resolves them too when they clear)."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        outcomes = backend.resolve(who, list(ids))
    _report(outcomes, "resolve", output)


@click.command()
@click.argument("ids", nargs=-1, type=ALERT_ID, required=True)
@As
@output_option
@pass_ctx
def escalate(ctx: Context, ids: tuple[int, ...], as_: str | None, output: str) -> None:
    """Page the next level of these alerts now instead of waiting (acked ones too)."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        outcomes = backend.escalate(who, list(ids))
    _report(outcomes, "escalate", output)


def next_cell(alert: dict[str, Any]) -> str:
    """The page that will really fire next: `L1 in 4m`, `ack ends in 30m`, or `-`."""
    upcoming = alert.get("next_escalation")
    if alert["status"] == "resolved" or not upcoming:
        return "-"
    at = age(upcoming["at"])
    if at.endswith(" ago"):  # fell due and the daemon has not run it yet: say so
        at = f"overdue {at[: -len(' ago')]}"
    if upcoming["kind"] == "ack_ends":
        return f"ack ends, L{upcoming['level']} {at}"
    if upcoming["kind"] == "repeat":
        return f"L{upcoming['level']} repeat {at}"
    return f"L{upcoming['level']} {at}"


@click.command("list")
@click.option("--all", "all_", is_flag=True, help="Include resolved alerts.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Show at most this many, newest first (0: all). A cut-off list says so on stderr.",
)
@output_option
@pass_ctx
def list_(ctx: Context, all_: bool, limit: int, output: str) -> None:
    """Open alerts: state, level, when each opened and what really fires next."""
    with ctx.backend() as backend:
        alerts, total = backend.list_alerts(all_, limit or None)
    if len(alerts) < total:
        what = "alerts" if all_ else "open alerts"
        warn(
            f"showing the newest {len(alerts):,} of {total:,} {what}; "
            f"use --limit {total} (or --limit 0) for all"
        )
    if output == "json":
        print_json(alerts)
        return
    if not alerts:
        click.echo("no open alerts" if not all_ else "no alerts")
        return
    rows = [
        [
            f"#{a['id']}",
            a["status"] + (" (maintenance)" if a.get("maintenance") else ""),
            str(a["level"]),
            a["severity"] or "-",
            a["alertname"],
            when(ctx, a["opened_at"]),
            next_cell(a),
            a["acked_by"] or a["resolved_by"] or "-",
        ]
        for a in alerts
    ]
    click.echo(table(rows, ["ID", "STATE", "LEVEL", "SEVERITY", "ALERT", "OPENED", "NEXT", "BY"]))


@click.command()
@click.argument("alert_id", type=ALERT_ID)
@output_option
@pass_ctx
def show(ctx: Context, alert_id: int, output: str) -> None:
    """One alert and its timeline."""
    with ctx.backend() as backend:
        shown = backend.show_alert(alert_id)
    if shown is None:
        raise click.ClickException(f"no alert {alert_id}")
    if output == "json":
        print_json(shown)
        return
    # Every value from the alert is escaped (escalator.text.escape): what an alert says
    # cannot move the cursor, recolour the terminal or add lines.
    click.echo(
        f"#{shown['id']} {escape(shown['alertname'])} [{escape(shown['severity'] or '-')}] "
        f"{shown['status']}, level {shown['level']}, policy {escape(shown['policy'])}"
    )
    if shown["summary"]:
        click.echo(f"  {escape(shown['summary'])}")
    labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(shown["labels"].items()))
    click.echo(f"  labels: {labels}")
    tz = ctx.tz()
    if shown.get("starts_at"):
        click.echo(f"  started: {local_full(shown['starts_at'], tz)} ({age(shown['starts_at'])})"
                   " (Alertmanager's startsAt)")  # fmt: skip
    click.echo(f"  opened:  {local_full(shown['opened_at'], tz)} ({age(shown['opened_at'])})")
    if shown.get("maintenance") and shown["status"] != "resolved":
        held = shown["maintenance"]
        click.echo(f"  held by maintenance {held['window']} until {when(ctx, held['until'])}")
    if shown["status"] != "resolved":
        click.echo(f"  next escalation: {next_cell(shown)}")
    click.echo("timeline:")
    for entry in shown["timeline"]:
        who = f" [{escape(entry['actor'])}]" if entry["actor"] else ""
        # The space after the padded kind keeps long kinds (escalated_manually) apart; the
        # stamp is one word (local time with its offset) so the columns stay aligned.
        stamp = stamp_local(entry["at"], tz)
        click.echo(f"  {stamp}  {entry['kind']:<14} {escape(entry['detail'])}{who}")


@click.command()
@click.option("--at", "at", help="When (ISO 8601, now, +2h); default now.")
@click.option("--role", "role", metavar="NAME", help="Only this role (or rotation).")
@output_option
@pass_ctx
def oncall(ctx: Context, at: str | None, role: str | None, output: str) -> None:
    """Who holds each rotation and role."""
    at_time = parse_time(at)
    with ctx.backend() as backend:
        rows = backend.oncall(at_time)
    if role is not None:
        rows = [r for r in rows if r["name"] == role]
        if not rows:
            raise click.BadParameter(f"no role or rotation {role!r}", param_hint="--role")
    if output == "json":
        print_json(rows)
        return
    if at_time is not None:
        click.echo(f"on call at {local_full(at_time, ctx.tz())}")
    else:
        click.echo("on call now")
    cells = [
        [
            r["kind"],
            r["name"],
            ", ".join(r["people"]) or "NOBODY",
            when(ctx, r["until"]) + (" (override)" if r["override"] else ""),
        ]
        for r in rows
    ]
    click.echo(table(cells, ["KIND", "NAME", "WHO", "UNTIL"]))


COMMANDS = [list_, show, ack, snooze, resolve, escalate, oncall]
