"""Alert verbs: `list`, `show`, `ack`, `snooze`, `resolve`, `escalate`, `oncall`.

Each works on the database or, with `--server`, through the daemon's API (`ctx.backend()`);
both end in the same service functions and print the same thing.
"""

from __future__ import annotations

import sys
from typing import Any

import click

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
from escalator.config.durations import parse_duration
from escalator.text import escape

As = click.option(
    "--as", "as_", metavar="PERSON", help="Who acts (default: $ESCALATOR_USER or login)."
)


def _check_duration(value: str | None, name: str) -> None:
    if value is None:
        return
    try:
        parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


def _report(outcomes: list[dict[str, Any]], verb: str) -> None:
    if not outcomes:
        click.echo(f"nothing to {verb}")
    failed = False
    for o in outcomes:
        mark = "ok" if o["changed"] else "--"
        click.echo(f"{mark} #{o['alert_id']}: {escape(o['message'])}")
        failed |= o["status"] == "unknown"
    if failed:
        sys.exit(1)


@click.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Acknowledge every triggered alert.")
@As
@click.option(
    "--for", "for_", metavar="DURATION", help="Snooze: the ack ends after this (e.g. 30m)."
)
@pass_ctx
def ack(ctx: Context, ids: tuple[int, ...], all_: bool, as_: str | None, for_: str | None) -> None:
    """Acknowledge alerts: stop their escalation."""
    if bool(ids) == all_:
        raise click.UsageError("give alert IDs or --all")
    who = actor(as_, ctx)
    _check_duration(for_, "--for")
    with ctx.backend() as backend:
        outcomes = backend.acknowledge(who, None if all_ else list(ids), for_)
    _report(outcomes, "acknowledge")


@click.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--for", "for_", metavar="DURATION", required=True, help="How long (30m, 2h).")
@As
@pass_ctx
def snooze(ctx: Context, ids: tuple[int, ...], for_: str, as_: str | None) -> None:
    """Acknowledge alerts for a while: escalation resumes after --for."""
    who = actor(as_, ctx)
    _check_duration(for_, "--for")
    with ctx.backend() as backend:
        outcomes = backend.snooze(who, list(ids), for_)
    _report(outcomes, "snooze")


@click.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@As
@pass_ctx
def resolve(ctx: Context, ids: tuple[int, ...], as_: str | None) -> None:
    """Resolve alerts by hand (Alertmanager resolves them too when they clear)."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        outcomes = backend.resolve(who, list(ids))
    _report(outcomes, "resolve")


@click.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@As
@pass_ctx
def escalate(ctx: Context, ids: tuple[int, ...], as_: str | None) -> None:
    """Page the next level of these alerts now instead of waiting."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        outcomes = backend.escalate(who, list(ids))
    _report(outcomes, "escalate")


@click.command("list")
@click.option("--all", "all_", is_flag=True, help="Include resolved alerts.")
@output_option
@pass_ctx
def list_(ctx: Context, all_: bool, output: str) -> None:
    """Open alerts: state, level and next escalation."""
    with ctx.backend() as backend:
        alerts = backend.list_alerts(all_)
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
            age(a["opened_at"]),
            age(a["next_action_at"]) if a["status"] != "resolved" else "-",
            a["acked_by"] or a["resolved_by"] or "-",
        ]
        for a in alerts
    ]
    click.echo(table(rows, ["ID", "STATE", "LEVEL", "SEVERITY", "ALERT", "OPENED", "NEXT", "BY"]))


@click.command()
@click.argument("alert_id", type=int)
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
    if shown.get("maintenance") and shown["status"] != "resolved":
        held = shown["maintenance"]
        click.echo(f"  held by maintenance {held['window']} until {held['until']}")
    if shown["status"] != "resolved" and shown["next_action_at"]:
        click.echo(f"  next escalation: {shown['next_action_at']} ({age(shown['next_action_at'])})")
    click.echo("timeline:")
    for entry in shown["timeline"]:
        who = f" [{escape(entry['actor'])}]" if entry["actor"] else ""
        # The space after the padded kind keeps long kinds (escalated_manually) apart.
        click.echo(f"  {entry['at']}  {entry['kind']:<14} {escape(entry['detail'])}{who}")


@click.command()
@click.option("--at", "at", help="When (ISO 8601, now, +2h); default now.")
@click.option("--role", "role", metavar="NAME", help="Only this role (or rotation).")
@output_option
@pass_ctx
def oncall(ctx: Context, at: str | None, role: str | None, output: str) -> None:
    """Who holds each rotation and role."""
    when = parse_time(at)
    with ctx.backend() as backend:
        rows = backend.oncall(when)
    if role is not None:
        rows = [r for r in rows if r["name"] == role]
        if not rows:
            raise click.BadParameter(f"no role or rotation {role!r}", param_hint="--role")
    if output == "json":
        print_json(rows)
        return
    if when is not None:
        click.echo(f"on call at {when:%Y-%m-%d %H:%M} UTC")
    else:
        click.echo("on call now")
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


COMMANDS = [list_, show, ack, snooze, resolve, escalate, oncall]
