"""Roster commands: `override add|list|remove`, `schedule` and `simulate`.

They live apart from escalator/cli.py so the roster's user interface reads in one place;
`register(main)` (called at the bottom of cli.py) adds them to the `escalator` group.
Times given without an offset are UTC, as everywhere in the CLI; output shows each time
in the rotation's own zone with the zone spelled out, so a mistake is visible.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from escalator.cli.support import (
    ALERT_ID,
    Context,
    actor,
    output_option,
    parse_duration,
    parse_time,
    pass_ctx,
    print_json,
    stdout_bytes,
    table,
)
from escalator.read import times

if TYPE_CHECKING:
    from escalator.config import Config
    from escalator.read.simulate import Scenario
    from escalator.roster.oncall import Override

ALL_METHODS = frozenset({"sms", "voice", "email", "chat", "console"})


def _config(ctx: Context) -> Config:
    config = ctx.config()
    assert config is not None
    return config


def _db_overrides(ctx: Context, since: datetime) -> list[Override]:
    """Overrides stored in the database (ending after `since`); [] with a warning when the
    database cannot be read, because a dry run from the config alone still helps."""
    from escalator.cli.backend import Local

    with Local(ctx) as local_db:
        return local_db._stored_overrides(since)


def _duration(value: str | None, name: str) -> timedelta | None:
    return None if value is None else parse_duration(value, name)  # type: ignore[no-any-return]


def _zone_name(ctx: Context, rotation_zone: str) -> Any:
    """The zone of a roster table: --tz if given, else the rotation's own."""
    return ctx.tz() if ctx.tz_name else times.zone(rotation_zone)


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
    start = parse_time(from_)  # None: now, by the database's or the daemon's clock
    end = parse_time(until)
    assert end is not None
    if start is not None and end <= start:
        raise click.BadParameter("must be after --from", param_hint="--until")
    if end <= datetime.now(UTC):  # an early, friendly check; the service's clock decides
        raise click.BadParameter("that time is already past", param_hint="--until")
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        created = backend.add_override(who, rotation, person, start, end)
    if output == "json":
        print_json(created)
        return
    tz = _zone_name(ctx, spec.timezone)
    click.echo(
        f"override #{created['id']}: {person} holds {rotation} from "
        f"{times.local(created['start'], tz)} until {times.local(created['end'], tz)}"
    )


@override.command("list")
@click.option("--all", "all_", is_flag=True, help="Include overrides that are over.")
@output_option
@pass_ctx
def override_list(ctx: Context, all_: bool, output: str) -> None:
    """Current and future overrides, from the database and the config file."""
    config = _config(ctx)
    with ctx.backend() as backend:
        rows = backend.overrides(all_)
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no overrides")
        return

    def zone(rotation_id: str) -> Any:
        spec = config.rotation(rotation_id)
        return _zone_name(ctx, spec.timezone if spec else "UTC")

    cells = [
        [
            f"#{r['id']}" if r["id"] is not None else "config",
            r["rotation"],
            r["person"],
            times.local(r["start"], zone(r["rotation"])),
            times.local(r["end"], zone(r["rotation"])),
            r["created_by"] or "-",
        ]
        for r in rows
    ]
    click.echo(table(cells, ["ID", "ROTATION", "PERSON", "FROM", "UNTIL", "BY"]))


@override.command("remove")
@click.argument("override_id", type=ALERT_ID)
@click.option("--as", "as_", metavar="PERSON", help="Who removes it (default: login).")
@pass_ctx
def override_remove(ctx: Context, override_id: int, as_: str | None) -> None:
    """Delete the override with this ID (see `override list`)."""
    who = actor(as_, ctx)
    with ctx.backend() as backend:
        removed = backend.remove_override(who, override_id)
    click.echo(f"removed override #{override_id} ({removed['person']} on {removed['rotation']})")


# schedule ------------------------------------------------------------------------------


@click.command()
@click.argument("rotation", required=False)
@click.option("--from", "from_", metavar="TIME", help="Start (ISO 8601, now, -1d); default now.")
@click.option("--until", "until", metavar="TIME", help="End; default two weeks after --from.")
@click.option(
    "--ical", is_flag=True, help="Print an iCalendar (.ics) feed instead (not with -o json)."
)
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
    """The shifts of ROTATION (default: every rotation) between --from and --until.

    Times are in each rotation's own zone (where its handoff is defined) unless --tz."""
    if ical and output == "json":
        raise click.UsageError("--ical prints iCalendar: it cannot also be -o json")
    config = _config(ctx)
    if rotation is not None and config.rotation(rotation) is None:
        known = ", ".join(r.id for r in config.rotations) or "none"
        raise click.BadParameter(f"unknown rotation {rotation!r} (known: {known})")
    start = parse_time(from_)  # None: now, by the database's or the daemon's clock
    end = parse_time(until)
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("must be after --from", param_hint="--until")
    with ctx.backend() as backend:
        if ical:
            stdout_bytes(backend.schedule_ical(rotation, start, end))
            return
        rows = backend.schedule(rotation, start, end)
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no rotations")
        return
    from escalator.roster.schedule import NOBODY, TABLE_HEADER, table_rows

    if ctx.tz_name:  # the reader asked for one zone: every rotation's rows in it
        tz = ctx.tz()
        cells = [
            [r["rotation"], times.local(r["start"], tz), times.local(r["end"], tz),
             r["person"] or NOBODY, r["note"]]
            for r in rows
        ]  # fmt: skip
    else:
        cells = table_rows(rows)
    click.echo(table(cells, TABLE_HEADER))


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
    from escalator.notify.channels import configured_methods

    try:
        return frozenset(configured_methods(config)) | {"console"}
    except Exception:
        pass
    from escalator.daemon import build_channels

    try:
        return frozenset(build_channels(config))
    except Exception as exc:  # a channel that cannot be built here still shows the roster
        click.echo(f"warning: channels not built ({exc}); assuming console only", err=True)
        return frozenset({"console"})


def _print_scenario(scenario: Scenario, start: datetime) -> None:
    from escalator.read.simulate import format_offset

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
@click.option(
    "--ack-by",
    metavar="PERSON",
    default="(simulated)",
    show_default=True,
    help="Who acknowledges in the --ack-at scenario (shown on its timeline).",
)
@click.option(
    "--until",
    "until",
    metavar="DURATION",
    help="Stop the simulation this long after start (default: when nothing more can fire).",
)
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
    from escalator.config.durations import format_duration
    from escalator.read.simulate import run as simulate_run

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


COMMANDS = [override, schedule, simulate]
