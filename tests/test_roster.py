"""The pure roster: rotations across DST, week/month/year boundaries, overrides, layers
with time restrictions, and coverage-gap detection. No database, no clock: every test
passes its own `at`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from escalator.config import Config, ConfigError, Step, Target, parse_config
from escalator.roster.oncall import (
    Override,
    coverage_gaps,
    on_call,
    recipients,
    resolve_target,
    segments,
)
from escalator.roster.schedule import roster_warnings

PEOPLE = """
people:
  - {id: alice}
  - {id: bob}
  - {id: carla}
  - {id: dave}
  - {id: dana}
teams:
  - {id: devops, members: [dave, dana]}
"""
POLICY = """
policies:
  critical:
    steps:
      - targets: [{rotation: r}]
"""


def config(rotations: str, extra: str = "", policies: str = POLICY) -> Config:
    return parse_config(PEOPLE + "rotations:\n" + rotations + extra + policies)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def weekly(zone: str, handoff: str = "09:00", weekday: str = "monday", kind: str = "weekly"):
    cfg = config(
        f"""
  - id: r
    type: {kind}
    handoff_weekday: {weekday}
    handoff_time: "{handoff}"
    timezone: {zone}
    start: 2026-01-05
    members: [alice, bob]
"""
    )
    rotation = cfg.rotation("r")
    assert rotation is not None
    return rotation


# DST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before", "after", "hours"),
    [
        # Europe: clocks go forward on Sunday 2026-03-29, back on Sunday 2026-10-25.
        ("Europe/Berlin", utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), 167),
        ("Europe/Berlin", utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), 169),
        # US: forward on Sunday 2026-03-08, back on Sunday 2026-11-01.
        ("America/New_York", utc(2026, 3, 2, 14), utc(2026, 3, 9, 13), 167),
        ("America/New_York", utc(2026, 10, 26, 13), utc(2026, 11, 2, 14), 169),
    ],
)
def test_weekly_shift_spanning_dst_hands_off_at_local_nine(
    zone: str, before: datetime, after: datetime, hours: int
) -> None:
    rotation = weekly(zone)
    shift = on_call(rotation, before + timedelta(days=3))
    assert shift is not None
    assert (shift.start, shift.end) == (before, after)
    assert shift.end - shift.start == timedelta(hours=hours)
    for edge in (shift.start, shift.end):
        assert edge.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") == "Mon 09:00"
    # The next person takes over exactly at the (shifted) UTC instant, not an hour off.
    just_before = on_call(rotation, after - timedelta(seconds=1))
    at_handoff = on_call(rotation, after)
    assert just_before is not None and at_handoff is not None
    assert just_before.person != at_handoff.person


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_every_weekly_handoff_of_a_year_is_monday_nine_local(zone: str) -> None:
    rotation = weekly(zone)
    shifts = segments(rotation, utc(2026, 1, 5, 12), utc(2027, 1, 4))
    assert len(shifts) == 52
    for i, shift in enumerate(shifts):
        assert shift.start.astimezone(ZoneInfo(zone)).strftime("%a %H:%M") == "Mon 09:00"
        assert shift.person == ("alice", "bob")[i % 2]
        assert shift.end == (shifts[i + 1].start if i + 1 < len(shifts) else shift.end)


@pytest.mark.parametrize(
    ("zone", "day", "start", "end", "hours"),
    [
        ("Europe/Berlin", 28, utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), 23),
        ("America/New_York", 7, utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), 23),
        ("America/New_York", 31, utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), 25),
    ],
)
def test_daily_shift_over_dst_keeps_local_handoff(
    zone: str, day: int, start: datetime, end: datetime, hours: int
) -> None:
    rotation = weekly(zone, kind="daily")
    month = start.month
    shift = on_call(rotation, local(zone, 2026, month, day, 12))
    assert shift is not None
    assert (shift.start, shift.end) == (start, end)
    assert shift.end - shift.start == timedelta(hours=hours)


def test_daily_berlin_autumn_change_day_is_25_hours() -> None:
    rotation = weekly("Europe/Berlin", kind="daily")
    shift = on_call(rotation, utc(2026, 10, 25, 12))
    assert shift is not None
    assert (shift.start, shift.end) == (utc(2026, 10, 25, 8), utc(2026, 10, 26, 8))
    before = on_call(rotation, utc(2026, 10, 24, 12))
    assert before is not None
    assert before.end - before.start == timedelta(hours=25)


def test_handoff_inside_the_spring_gap_lands_just_after_it() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: read with the winter offset, that is
    # 01:30 UTC = 03:30 summer time. An ambiguous 02:30 in October is its first occurrence.
    rotation = weekly("Europe/Berlin", handoff="02:30", kind="daily")
    spring = on_call(rotation, utc(2026, 3, 29, 12))
    autumn = on_call(rotation, utc(2026, 10, 25, 12))
    assert spring is not None and autumn is not None
    assert spring.start == utc(2026, 3, 29, 1, 30)
    assert autumn.start == utc(2026, 10, 25, 0, 30)


def test_hourly_shifts_are_elapsed_hours_across_dst() -> None:
    rotation = weekly("Europe/Berlin", handoff="00:00", kind="hourly")
    day = segments(
        rotation, local("Europe/Berlin", 2026, 3, 29), local("Europe/Berlin", 2026, 3, 30)
    )
    assert len(day) == 23  # the local day has 23 hours, each one shift
    assert {s.end - s.start for s in day} == {timedelta(hours=1)}


def test_custom_shift_length_is_elapsed_time() -> None:
    cfg = config(
        """
  - id: r
    type: custom
    shift_length: 12h
    handoff_time: "08:00"
    timezone: America/New_York
    start: 2026-03-06
    members: [alice, bob, carla]
"""
    )
    rotation = cfg.rotation("r")
    assert rotation is not None
    shifts = segments(rotation, utc(2026, 3, 6, 13), utc(2026, 3, 9, 12))
    assert [s.person for s in shifts[:4]] == ["alice", "bob", "carla", "alice"]
    assert {s.end - s.start for s in shifts} == {timedelta(hours=12)}
    # Fixed elapsed length: after the change the handoffs are at 09:00/21:00 local.
    later = on_call(rotation, utc(2026, 3, 9, 15))
    assert later is not None
    assert later.start.astimezone(ZoneInfo("America/New_York")).hour in (9, 21)


# Week, month and year boundaries -------------------------------------------------------------


def test_daily_rotation_keeps_counting_across_month_and_year_ends() -> None:
    cfg = config(
        """
  - id: r
    type: daily
    handoff_time: "00:00"
    timezone: Europe/Berlin
    start: 2026-01-01
    members: [alice, bob, carla]
"""
    )
    rotation = cfg.rotation("r")
    assert rotation is not None
    members = ["alice", "bob", "carla"]
    for day in (
        datetime(2026, 1, 31),
        datetime(2026, 2, 1),
        datetime(2026, 2, 28),
        datetime(2026, 3, 1),
        datetime(2026, 12, 31),
        datetime(2027, 1, 1),
    ):
        at = day.replace(hour=12, tzinfo=ZoneInfo("Europe/Berlin"))
        shift = on_call(rotation, at)
        index = (day.date() - datetime(2026, 1, 1).date()).days
        assert shift is not None
        assert shift.person == members[index % 3], day
        assert shift.start.astimezone(ZoneInfo("Europe/Berlin")).date() == day.date()


def test_weekly_shift_spanning_a_month_end_and_a_sunday_handoff() -> None:
    rotation = weekly("America/New_York", handoff="18:00", weekday="sunday")
    # Sunday 2026-05-31 18:00 local starts a shift that runs into June.
    before = on_call(rotation, local("America/New_York", 2026, 5, 31, 17, 59))
    after = on_call(rotation, local("America/New_York", 2026, 5, 31, 18, 0))
    assert before is not None and after is not None
    assert before.person != after.person
    assert after.start == local("America/New_York", 2026, 5, 31, 18)
    assert after.end == local("America/New_York", 2026, 6, 7, 18)


def test_before_the_rotation_starts_nobody_is_on_call() -> None:
    rotation = weekly("Europe/Berlin")
    assert on_call(rotation, utc(2026, 1, 5, 7, 59)) is None  # 08:59 local on day one
    first = on_call(rotation, utc(2026, 1, 5, 8))
    assert first is not None and first.person == "alice"


# Overrides ---------------------------------------------------------------------------------


def test_override_overlapping_a_handoff() -> None:
    rotation = weekly("America/New_York")
    handoff = local("America/New_York", 2026, 3, 9, 9)  # alice -> bob, right after DST
    cover = Override(
        "r",
        "carla",
        local("America/New_York", 2026, 3, 8, 18),
        local("America/New_York", 2026, 3, 9, 12),
        7,
    )
    found = segments(rotation, handoff - timedelta(days=1), handoff + timedelta(days=1), [cover])
    assert [(s.person, s.override) for s in found] == [
        ("alice", False),
        ("carla", True),
        ("bob", False),
    ]
    assert found[0].end == found[1].start == cover.start
    assert found[1].end == found[2].start == cover.end
    assert found[1].override_id == 7
    # The point answer knows the exact next change too.
    sunday = on_call(rotation, cover.start - timedelta(hours=6), [cover])
    assert sunday is not None and (sunday.person, sunday.end) == ("alice", cover.start)
    monday = on_call(rotation, handoff + timedelta(minutes=1), [cover])
    assert monday is not None and (monday.person, monday.override, monday.end) == (
        "carla",
        True,
        cover.end,
    )


def test_latest_override_wins_and_other_rotations_are_ignored() -> None:
    rotation = weekly("UTC")
    at = utc(2026, 3, 4, 12)
    long = Override("r", "carla", utc(2026, 3, 3), utc(2026, 3, 6), 1)
    short = Override("r", "dave", utc(2026, 3, 4), utc(2026, 3, 5), 2)
    other = Override("elsewhere", "dana", utc(2026, 3, 1), utc(2026, 3, 9), 3)
    shift = on_call(rotation, at, [long, short, other])
    assert shift is not None and (shift.person, shift.end) == ("dave", utc(2026, 3, 5))
    after = on_call(rotation, utc(2026, 3, 5, 1), [long, short, other])
    assert after is not None and after.person == "carla"


def test_overrides_from_the_config_file_use_the_rotation_zone() -> None:
    cfg = config(
        """
  - id: r
    timezone: Europe/Berlin
    members: [alice, bob]
    overrides:
      - {person: carla, from: "2026-03-07T09:00", until: "2026-03-09T09:00"}
      - {person: dave, from: "2026-04-01T00:00:00Z", until: "2026-04-02T00:00:00Z"}
"""
    )
    rotation = cfg.rotation("r")
    assert rotation is not None
    shift = on_call(rotation, utc(2026, 3, 7, 8))  # 09:00 CET
    assert shift is not None and (shift.person, shift.override) == ("carla", True)
    assert shift.override_id is None
    assert on_call(rotation, utc(2026, 3, 7, 7, 59)).person != "carla"  # type: ignore[union-attr]
    assert on_call(rotation, utc(2026, 4, 1, 12)).person == "dave"  # type: ignore[union-attr]
    step = Step(targets=[Target(rotation="r")])
    assert [r.id for r in recipients(cfg, step, utc(2026, 3, 8))] == ["carla"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('{person: zoe, from: "2026-03-07T09:00", until: "2026-03-08T09:00"}', "unknown person"),
        ('{person: bob, from: "2026-03-07T09:00", until: "2026-03-06T09:00"}', "must be after"),
    ],
)
def test_bad_config_overrides_are_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(f"  - id: r\n    members: [alice]\n    overrides:\n      - {override}\n")
    assert "rotations[0].overrides[0]" in err.value.render()
    assert message in err.value.render()


# Layers and restrictions -------------------------------------------------------------------

LAYERED = """
  - id: r
    timezone: America/New_York
    layers:
      - name: business
        type: weekly
        restrictions: [{days: weekdays, from: "09:00", to: "17:00"}]
        members: [alice, bob]
      - name: nights
        type: daily
        handoff_time: "17:00"
        members: [dave, dana]
"""


def test_first_layer_on_duty_decides() -> None:
    rotation = config(LAYERED).rotation("r")
    assert rotation is not None
    ny = "America/New_York"
    cases = [
        (local(ny, 2026, 3, 4, 10), "alice", "business"),  # Wednesday, business hours
        (local(ny, 2026, 3, 4, 20), "dave", "nights"),
        (local(ny, 2026, 3, 7, 10), "dave", "nights"),  # Saturday: no business layer
        (local(ny, 2026, 3, 11, 16, 59), "bob", "business"),  # next week, after DST
    ]
    for at, person, layer in cases:
        shift = on_call(rotation, at)
        assert shift is not None
        assert (shift.person, shift.layer) == (person, layer), at
    wednesday = segments(rotation, local(ny, 2026, 3, 4), local(ny, 2026, 3, 5))
    assert [(s.person, s.layer) for s in wednesday] == [
        ("dana", "nights"),
        ("alice", "business"),
        ("dave", "nights"),
    ]
    assert wednesday[1].start == local(ny, 2026, 3, 4, 9)
    assert wednesday[1].end == local(ny, 2026, 3, 4, 17)
    assert wednesday[0].end == wednesday[1].start
    # The point answer's end is the next change, even when a higher layer causes it.
    morning = on_call(rotation, local(ny, 2026, 3, 4, 7))
    assert morning is not None and morning.end == local(ny, 2026, 3, 4, 9)


def test_overnight_restriction_and_business_hours_gaps() -> None:
    cfg = config(
        """
  - id: r
    timezone: Europe/Berlin
    restrictions: [{days: [friday], from: "18:00", to: "08:00"}]
    members: [alice, bob]
"""
    )
    rotation = cfg.rotation("r")
    assert rotation is not None
    berlin = "Europe/Berlin"
    assert on_call(rotation, local(berlin, 2026, 3, 6, 17, 59)) is None
    friday_night = on_call(rotation, local(berlin, 2026, 3, 7, 2))
    assert friday_night is not None
    assert friday_night.start == local(berlin, 2026, 3, 6, 18)
    assert friday_night.end == local(berlin, 2026, 3, 7, 8)
    assert on_call(rotation, local(berlin, 2026, 3, 7, 8)) is None


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        ("  - id: r\n    members: [alice]\n    layers: [{name: a, members: [bob]}]\n", "not both"),
        (
            "  - id: r\n    handoff_time: '10:00'\n    layers: [{name: a, members: [bob]}]\n",
            "handoff_time: with `layers`",
        ),
        ("  - id: r\n    timezone: UTC\n", "needs `members`"),
        ("  - id: r\n    layers: [{name: a, members: [zoe]}]\n", "unknown person 'zoe'"),
        (
            "  - id: r\n    members: [bob]\n    restrictions: [{days: someday, from: '09:00', "
            "to: '17:00'}]\n",
            "weekdays",
        ),
    ],
)
def test_layer_config_errors(rotation: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(rotation)
    assert message in err.value.render()


# Targets, roles and gaps -------------------------------------------------------------------


def test_roles_resolve_to_people_teams_and_rotations() -> None:
    cfg = config(
        "  - id: r\n    members: [alice, bob]\n",
        extra="roles:\n  lead: [{person: carla}]\n  ops: [{team: devops}, {rotation: r}]\n",
    )
    at = utc(2026, 3, 4)
    assert [(r.id, r.via) for r in resolve_target(cfg, Target(role="ops"), at)] == [
        ("dave", "role ops"),
        ("dana", "role ops"),
        ("alice", "role ops"),
    ]
    assert [r.id for r in resolve_target(cfg, Target(role="lead"), at)] == ["carla"]


GAPPY = """
  - id: r
    timezone: UTC
    restrictions: [{days: weekdays, from: "09:00", to: "17:00"}]
    members: [alice]
  - id: later
    start: 2026-03-16
    timezone: UTC
    members: [bob]
"""
GAPPY_POLICIES = """
roles:
  late: [{rotation: later}]
policies:
  critical:
    steps:
      - targets: [{rotation: r}]
      - after: 5m
        targets: [{rotation: r}, {channel: incidents}]
      - after: 10m
        targets: [{role: late}]
"""


def test_coverage_gaps_name_rotation_role_and_policy_level() -> None:
    cfg = config(GAPPY, policies=GAPPY_POLICIES)
    start = utc(2026, 3, 9)  # Monday 00:00
    gaps = coverage_gaps(cfg, start, start + timedelta(weeks=1))
    subjects = {g.subject for g in gaps}
    assert subjects == {
        "rotation r",
        "policy critical level 0",
        "rotation later",
        "role late",
        "policy critical level 2",
    }  # level 1 also posts to a channel: never empty
    level0 = [(g.start, g.end) for g in gaps if g.subject == "policy critical level 0"]
    assert level0[0] == (utc(2026, 3, 9), utc(2026, 3, 9, 9))
    assert level0[1] == (utc(2026, 3, 9, 17), utc(2026, 3, 10, 9))
    assert level0[-1] == (utc(2026, 3, 13, 17), utc(2026, 3, 16))  # the weekend
    assert len(level0) == 6
    late = [(g.start, g.end) for g in gaps if g.subject == "role late"]
    assert late == [(start, start + timedelta(weeks=1))]  # starts only on the 16th, 09:00
    # An override fills a hole.
    cover = Override("later", "carla", start, utc(2026, 3, 16, 9))
    assert not any(
        g.subject == "role late" for g in coverage_gaps(cfg, start, utc(2026, 3, 20), [cover])
    )


def test_roster_warnings_summarise_gaps_per_subject() -> None:
    cfg = config(GAPPY, policies=GAPPY_POLICIES)
    lines = roster_warnings(cfg, utc(2026, 3, 9))
    level0 = next(line for line in lines if line.startswith("policy critical level 0"))
    assert "from 2026-03-09 00:00 UTC until 2026-03-09 09:00 UTC" in level0
    assert "more" in level0
    late = next(line for line in lines if line.startswith("role late"))
    assert "until 2026-03-16 09:00 UTC" in late
    assert not any(line.startswith("policy critical level 1") for line in lines)


def test_shipped_config_has_no_gaps(shipped_config_path) -> None:  # type: ignore[no-untyped-def]
    from escalator.config import load_config

    cfg = load_config(shipped_config_path)
    assert coverage_gaps(cfg, utc(2026, 3, 1), utc(2026, 12, 1)) == []
