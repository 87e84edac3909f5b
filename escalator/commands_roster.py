"""Roster commands: `override add|list|remove`, `schedule` and `simulate`.

They live apart from escalator/cli.py so the roster's user interface reads in one place;
`register(main)` (called at the bottom of cli.py) adds them to the `escalator` group.
Times given without an offset are UTC, as everywhere in the CLI; output shows each time
in the rotation's own zone with the zone spelled out, so a mistake is visible.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import select

from escalator.alerts import load_overrides
from escalator.cli_support import (
    Context,
    actor,
    output_option,
    parse_time,
    pass_ctx,
    print_json,
    table,
)
from escalator.config import Config
from escalator.durations import format_duration, parse_duration
from escalator.roster import Override, config_overrides
from escalator.schedule import (
    TABLE_HEADER,
    local,
    rotation_shifts,
    shift_rows,
    table_rows,
    to_ical,
)
from escalator.simulate import Scenario, format_offset
from escalator.simulate import run as simulate_run
from escalator.store.db import transaction
from escalator.store.tables import OverrideRow

ALL_METHODS = frozenset({"sms", "voice", "email", "chat", "console"})


def _config(ctx: Context) -> Config:
    config = ctx.config()
    assert config is not None
    return config


def _db_overrides(ctx: Context, since: datetime) -> list[Override]:
    """Overrides stored in the database (ending after `since`); [] with a warning when the
    database cannot be read, because a schedule from the config alone still helps."""
    try:
        engine, factory = ctx.local()
    except click.ClickException as exc:
        click.echo(f"warning: overrides from the database not read ({exc.message})", err=True)
        return []
    try:
        with transaction(factory) as session:
            return load_overrides(session, since)
    finally:
        engine.dispose()


def _duration(value: str | None, name: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


# override ------------------------------------------------------------------------------


@click.group()
def override() -> None:
    """Let a person take a rotation for a time range (stored in the database)."""


@override.command("add")
@click.argument("rotation")
@click.argument("person")
@click.option("--from", "from_", metavar="TIME", help="Start (ISO 8601, now, +2h); default now.")
@click.option("--until", "until", metavar="TIME", required=True, help="End (ISO 8601, +2d).")
@click.option("--as", "as_", metavar="PERSON", help="Who records it (default: login).")
@output_option
@pass_ctx
def override_add(
    ctx: Context,
    rotation: str,
    person: str,
    from_: str | None,
    until: str,
    as_: str | None,
    output: str,
) -> None:
    """PERSON holds ROTATION from --from until --until."""
    config = _config(ctx)
    spec = config.rotation(rotation)
    if spec is None:
        known = ", ".join(r.id for r in config.rotations) or "none"
        raise click.BadParameter(f"unknown rotation {rotation!r} (known: {known})")
    if config.person(person) is None:
        raise click.BadParameter(f"unknown person {person!r}")
    now = datetime.now(UTC)
    start = parse_time(from_) or now
    end = parse_time(until)
    assert end is not None
    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--until")
    if end <= now:
        raise click.BadParameter("that time is already past", param_hint="--until")
    who = actor(as_, ctx)
    engine, factory = ctx.local()
    try:
        with transaction(factory) as session:
            row = OverrideRow(
                rotation=rotation,
                person=person,
                start_at=start,
                end_at=end,
                created_by=who,
                created_at=now,
            )
            session.add(row)
            session.flush()
            row_id = row.id
    finally:
        engine.dispose()
    if output == "json":
        print_json(
            {
                "id": row_id,
                "rotation": rotation,
                "person": person,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "created_by": who,
            }
        )
        return
    click.echo(
        f"override #{row_id}: {person} holds {rotation} from {local(start, spec.timezone)} "
        f"until {local(end, spec.timezone)}"
    )


@override.command("list")
@click.option("--all", "all_", is_flag=True, help="Include overrides that are over.")
@output_option
@pass_ctx
def override_list(ctx: Context, all_: bool, output: str) -> None:
    """Current and future overrides, from the database and the config file."""
    config = _config(ctx)
    now = datetime.now(UTC)
    engine, factory = ctx.local()
    try:
        with transaction(factory) as session:
            query = select(OverrideRow).order_by(OverrideRow.start_at, OverrideRow.id)
            if not all_:
                query = query.where(OverrideRow.end_at > now)
            rows = [
                {
                    "id": r.id,
                    "source": "database",
                    "rotation": r.rotation,
                    "person": r.person,
                    "start": r.start_at,
                    "end": r.end_at,
                    "created_by": r.created_by,
                }
                for r in session.scalars(query)
            ]
    finally:
        engine.dispose()
    for rotation in config.rotations:
        for o in config_overrides(rotation):
            if all_ or o.end > now:
                rows.append(
                    {
                        "id": None,
                        "source": "config",
                        "rotation": o.rotation,
                        "person": o.person,
                        "start": o.start,
                        "end": o.end,
                        "created_by": None,
                    }
                )
    rows.sort(key=lambda r: (r["start"], r["id"] or 0))
    if output == "json":
        print_json(
            [{**r, "start": r["start"].isoformat(), "end": r["end"].isoformat()} for r in rows]
        )
        return
    if not rows:
        click.echo("no overrides")
        return

    def zone(rotation_id: str) -> str:
        spec = config.rotation(rotation_id)
        return spec.timezone if spec else "UTC"

    cells = [
        [
            f"#{r['id']}" if r["id"] is not None else "config",
            r["rotation"],
            r["person"],
            local(r["start"], zone(r["rotation"])),
            local(r["end"], zone(r["rotation"])),
            r["created_by"] or "-",
        ]
        for r in rows
    ]
    click.echo(table(cells, ["ID", "ROTATION", "PERSON", "FROM", "UNTIL", "BY"]))


@override.command("remove")
@click.argument("override_id", type=int)
@pass_ctx
def override_remove(ctx: Context, override_id: int) -> None:
    """Delete the override with this ID (see `override list`)."""
    engine, factory = ctx.local()
    try:
        with transaction(factory) as session:
            row = session.get(OverrideRow, override_id)
            if row is None:
                click.echo(f"no override #{override_id}", err=True)
                sys.exit(1)
            detail = f"{row.person} on {row.rotation}"
            session.delete(row)
    finally:
        engine.dispose()
    click.echo(f"removed override #{override_id} ({detail})")


# schedule ------------------------------------------------------------------------------


@click.command()
@click.argument("rotation", required=False)
@click.option("--from", "from_", metavar="TIME", help="Start (ISO 8601, now, -1d); default now.")
@click.option("--until", "until", metavar="TIME", help="End; default two weeks after --from.")
@click.option("--ical", is_flag=True, help="Print an iCalendar (.ics) feed instead of a table.")
@output_option
@pass_ctx
def schedule(
    ctx: Context,
    rotation: str | None,
    from_: str | None,
    until: str | None,
    ical: bool,
    output: str,
) -> None:
    """The shifts of ROTATION (default: every rotation) between --from and --until."""
    config = _config(ctx)
    if rotation is not None and config.rotation(rotation) is None:
        known = ", ".join(r.id for r in config.rotations) or "none"
        raise click.BadParameter(f"unknown rotation {rotation!r} (known: {known})")
    now = datetime.now(UTC)
    start = parse_time(from_) or now
    end = parse_time(until) or start + timedelta(weeks=2)
    if end <= start:
        raise click.BadParameter("must be after --from", param_hint="--until")
    overrides = _db_overrides(ctx, start)
    chosen = [r for r in config.rotations if rotation is None or r.id == rotation]
    shifts = [(r, rotation_shifts(r, start, end, overrides)) for r in chosen]
    if ical:
        sys.stdout.buffer.write(to_ical(config, shifts, now))
        sys.stdout.flush()
        return
    rows = [row for r, s in shifts for row in shift_rows(config, r, s)]
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no rotations")
        return
    click.echo(table(table_rows(rows), TABLE_HEADER))


# simulate ------------------------------------------------------------------------------


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{part!r}: write labels as name=value,name=value")
        labels[key.strip()] = value.strip().strip("\"'")
    if not labels:
        raise click.BadParameter("give at least one label, e.g. severity=critical")
    return labels


def _methods(config: Config, all_channels: bool) -> frozenset[str]:
    """The methods the daemon would have with this config (its own build_channels)."""
    if all_channels:
        return ALL_METHODS
    from escalator.daemon import build_channels

    try:
        return frozenset(build_channels(config))
    except Exception as exc:  # a channel that cannot be built here still shows the roster
        click.echo(f"warning: channels not built ({exc}); assuming console only", err=True)
        return frozenset({"console"})


def _print_scenario(scenario: Scenario, start: datetime) -> None:
    click.echo(f"== {scenario.name} ==")
    rows = []
    for e in scenario.events:
        when = f"{e.at.astimezone(UTC):%H:%M:%S}"
        level = "-" if e.level is None else str(e.level)
        if e.kind == "page":
            status = "" if e.status == "sent" else e.status
            rows.append(
                [
                    format_offset(e.offset),
                    when,
                    level,
                    e.recipient or "-",
                    e.via or "-",
                    e.method or "-",
                    e.address or "-",
                    " ".join(x for x in (e.reason or "", status) if x),
                ]
            )
        else:
            rows.append([format_offset(e.offset), when, level, "-", "-", "-", "-", e.detail])
    click.echo(table(rows, ["AFTER", "UTC", "LEVEL", "WHO", "VIA", "METHOD", "ADDRESS", "NOTE"]))
    click.echo(f"alert is {scenario.final_status} at the end\n")


@click.command()
@click.option("--labels", required=True, help="Alert labels: severity=critical,alertname=X.")
@click.option("--start", "start", metavar="TIME", help="When the alert opens; default now.")
@click.option("--ack-at", metavar="DURATION", help="Also simulate an ack this long after start.")
@click.option("--ack-by", metavar="PERSON", default="(simulated)", show_default=True)
@click.option("--until", "until", metavar="DURATION", help="Stop this long after start.")
@click.option(
    "--all-channels",
    is_flag=True,
    help="Assume every contact method has a working channel (default: this config's).",
)
@output_option
@pass_ctx
def simulate(
    ctx: Context,
    labels: str,
    start: str | None,
    ack_at: str | None,
    ack_by: str,
    until: str | None,
    all_channels: bool,
    output: str,
) -> None:
    """Dry-run an alert: who would be paged when, by which method, at each level.

    Runs the daemon's state machine and roster on a virtual clock, without an
    acknowledgement and, with --ack-at, with one.
    """
    config = _config(ctx)
    parsed = _labels(labels)
    policy = config.route(parsed)
    if policy is None:
        raise click.ClickException(
            "no route, default_policy or severity matches these labels: such an alert "
            "would not be tracked"
        )
    opened = parse_time(start) or datetime.now(UTC)
    ack_delta = _duration(ack_at, "--ack-at")
    horizon = _duration(until, "--until")
    methods = _methods(config, all_channels)
    overrides = _db_overrides(ctx, opened)
    scenarios = [simulate_run(config, policy, opened, methods, overrides, until=horizon)]
    if ack_delta is not None:
        scenarios.append(
            simulate_run(
                config, policy, opened, methods, overrides, ack_delta, ack_by, until=horizon
            )
        )
    if output == "json":
        print_json(
            {
                "labels": parsed,
                "policy": policy,
                "start": opened.isoformat().replace("+00:00", "Z"),
                "methods": sorted(methods),
                "scenarios": [s.as_dict() for s in scenarios],
            }
        )
        return
    click.echo(
        f"policy {policy} for {', '.join(f'{k}={v}' for k, v in parsed.items())}; "
        f"alert opens {opened:%Y-%m-%d %H:%M:%S} UTC"
    )
    click.echo(f"channels: {', '.join(sorted(methods)) or 'none'}")
    if horizon is not None:
        click.echo(f"simulated for {format_duration(horizon)}")
    click.echo()
    for scenario in scenarios:
        _print_scenario(scenario, opened)


def register(group: click.Group) -> None:
    """Add the roster commands to an `escalator` command group."""
    group.add_command(override)
    group.add_command(schedule)
    group.add_command(simulate)
