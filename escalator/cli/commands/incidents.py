"""CLI verbs for the incident protocol: `update`, `postmortem`, `postmortems`, `runbook`,
`report`.

Like `ack`, they work on the database (`--database-url`) or through a daemon's API
(`--server`); what they record, the daemon's engine posts on its next tick through its
own channels.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from escalator.cli.support import (
    ALERT_ID,
    Context,
    actor,
    output_option,
    pass_ctx,
    print_json,
    table,
    when,
)


@click.command()
@click.argument("incident_id", type=ALERT_ID)
@click.argument("message")
@click.option(
    "--status",
    type=click.Choice(["IN PROGRESS", "MONITORING", "RESOLVED"], case_sensitive=False),
    default="IN PROGRESS",
    show_default=True,
    help="The incident's status; RESOLVED also resolves the alert.",
)
@click.option("--eta", help="Estimated resolution, free text (e.g. '20:30 UTC').")
@click.option("--as", "as_", metavar="PERSON", help="Who posts (default: $ESCALATOR_USER).")
@pass_ctx
def update(
    ctx: Context,
    incident_id: int,
    message: str,
    status: str,
    eta: str | None,
    as_: str | None,
) -> None:
    """Post a status update to an incident (its ID is the critical alert's ID).

    It goes on the timeline and to the incident channel ("Status Update" template),
    and the next 15-minute reminder counts from now. `--status RESOLVED` also resolves
    the alert (and so the incident); an incident already resolved takes no more updates.
    """
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        done = backend.post_update(who, incident_id, message, status.upper(), eta)
    channel = done["channel"]
    resolved = " and the alert resolved" if status.upper() == "RESOLVED" else ""
    click.echo(f"ok #{channel}: update recorded{resolved}; the daemon posts it on its next tick")


@click.command()
@click.argument("incident_id", type=ALERT_ID, required=False)
@click.option("--link", metavar="URL", help="Where the post-mortem is; closes the incident.")
@click.option("--overdue", is_flag=True, help="List overdue post-mortems instead.")
@click.option("--as", "as_", metavar="PERSON", help="Who links it.")
@output_option
@pass_ctx
def postmortem(
    ctx: Context,
    incident_id: int | None,
    link: str | None,
    overdue: bool,
    as_: str | None,
    output: str,
) -> None:
    """Close an incident's post-mortem (`ID --link URL`) or list them (`--overdue`)."""
    if overdue or incident_id is None:
        if link:
            raise click.UsageError("--link needs an incident ID")
        _list_postmortems(ctx, overdue_only=overdue, output=output)
        return
    if not link:
        raise click.UsageError("give --link URL (or --overdue to list)")
    if not link.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--link")
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        channel = backend.link_postmortem(who, incident_id, link)["channel"]
    click.echo(f"ok #{channel}: post-mortem {link}; incident closed")


@click.command()
@click.option("--overdue", is_flag=True, help="Only those past their due time.")
@output_option
@pass_ctx
def postmortems(ctx: Context, overdue: bool, output: str) -> None:
    """Post-mortems still owed (resolved incidents without a linked post-mortem)."""
    _list_postmortems(ctx, overdue_only=overdue, output=output)


def _list_postmortems(ctx: Context, overdue_only: bool, output: str) -> None:
    with ctx.backend() as backend:
        rows = backend.postmortems(overdue_only)
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no overdue post-mortems" if overdue_only else "no post-mortems owed")
        return
    cells = [
        [
            f"#{r['id']}",
            r["channel"],
            r["alertname"],
            r["commander"] or "-",
            when(ctx, r["due_at"]),
            f"OVERDUE {r['overdue_by']}" if r["overdue"] else "due",
        ]
        for r in rows
    ]
    click.echo(table(cells, ["ID", "CHANNEL", "ALERT", "COMMANDER", "DUE", "STATE"]))


@click.command()
@click.argument("alertname")
@output_option
@pass_ctx
def runbook(ctx: Context, alertname: str, output: str) -> None:
    """The runbook for an alert name: link, impact and immediate actions."""
    from escalator.incidents import runbooks

    config = ctx.config()
    assert config is not None
    found = runbooks.describe(config, alertname)
    if found is None:
        known = ", ".join(sorted(config.runbooks)) or "none configured"
        click.echo(f"no runbook for {alertname!r} (known: {known})", err=True)
        sys.exit(1)
    if output == "json":
        print_json(found)
        return
    title = f" ({found['title']})" if found["title"] else ""
    click.echo(f"{found['alertname']}{title}: {found['url']}")
    if found["impact"]:
        click.echo("Impact:")
        for line in found["impact"]:
            click.echo(f"  - {line}")
    if found["immediate_actions"]:
        click.echo("Immediate actions:")
        for i, action in enumerate(found["immediate_actions"], 1):
            click.echo(f"  {i}. {action}")


@click.command("report")
@click.option("--since", default="30d", show_default=True, help="How far back (30d, 2w).")
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw time-to-acknowledge per week and levels reached (.png or .svg).",
)
@output_option
@pass_ctx
def report_(ctx: Context, since: str, chart_path: Path | None, output: str) -> None:
    """Per alert name and per person: count, time to ack and resolve, SLA, pages."""
    from escalator.read import report

    try:  # the grammar only, checked before anything is read; the window is the store's
        report.parse_since(since, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    if chart_path is not None and chart_path.suffix.lower() not in (".png", ".svg"):
        raise click.BadParameter("use a .png or .svg file name", param_hint="--chart")
    if chart_path is not None:
        try:
            report.require_chart()
        except report.ChartUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
    with ctx.backend() as backend:
        data = backend.report(since)
    if chart_path is not None:
        report.chart(data, chart_path)
    if output == "json":
        print_json(data)
    else:
        _print_report(data)
    if chart_path is not None:
        click.echo(f"chart written to {chart_path}", err=True)


def _print_report(data: dict[str, object]) -> None:
    from escalator.read import report

    totals = data["totals"]
    assert isinstance(totals, dict)
    click.echo(
        f"{data['since']} .. {data['until']}: {totals['count']} alerts, "
        f"{totals['acknowledged']} acknowledged, {totals['sla_breaches']} SLA breaches, "
        f"{totals['pages_sent']} pages sent"
    )
    header = ["", "COUNT", "TTA MED", "TTA P90", "TTR MED", "TTR P90", "SLA BREACH"]
    by_name = data["by_alertname"]
    by_person = data["by_person"]
    assert isinstance(by_name, list) and isinstance(by_person, list)
    click.echo("")
    click.echo(table(report.table_rows(by_name, "alertname"), ["ALERT", *header[1:], "PAGES"]))
    click.echo("")
    click.echo(
        table(
            report.table_rows(by_person, "person"),
            ["PERSON", "ACKED", *header[2:], "PAGED"],
        )
    )


COMMANDS = [update, postmortem, postmortems, runbook, report_]
