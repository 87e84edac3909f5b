"""Who is on call at time t: a pure function of the config, overrides and an explicit `now`.

Daily and weekly shifts hand off at a local wall-clock time in the rotation's time zone,
so a Monday 09:00 Europe/Berlin handoff stays at 09:00 local across daylight-saving
changes (the shift that spans the change is an hour shorter or longer). Hourly and custom
shifts are fixed lengths of elapsed time from the first handoff. A local time that does
not exist (inside a spring-forward gap) is read with the offset before the change, so it
lands just after the gap; an ambiguous one (autumn) means its first occurrence.

A rotation is one shift pattern, or several `layers` each with its own pattern and time
restrictions; at any moment an override wins, else the first layer on duty. Everything
here takes `at`/`start`/`end` from the caller and reads no clock, database or network.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from escalator.config import WEEKDAYS, Target

if TYPE_CHECKING:
    from escalator.config import Config, Restriction, Rotation, ShiftPattern, Step


@dataclass(frozen=True)
class Override:
    """`person` holds `rotation` from `start` (inclusive) to `end` (exclusive).

    `id` is the database row's id; None for an override written in the config file.
    """

    rotation: str
    person: str
    start: datetime
    end: datetime
    id: int | None = None


@dataclass(frozen=True)
class Shift:
    """A stretch of time in which one person holds a rotation.

    `layer` names the layer that put them there (None for a rotation without layers);
    `override` is True when an override did, and `override_id` is its row id (None when
    it came from the config file).
    """

    rotation: str
    person: str
    start: datetime
    end: datetime
    override: bool = False
    layer: str | None = None
    override_id: int | None = None


@dataclass(frozen=True)
class Recipient:
    """A person to page, or a chat channel to post to; `via` says how the step reached it."""

    kind: str  # "person" | "channel"
    id: str
    via: str


@dataclass(frozen=True)
class Gap:
    """`subject` (e.g. "role cto", "policy critical level 2") reaches nobody in [start, end)."""

    subject: str
    start: datetime
    end: datetime


# Local wall-clock arithmetic -----------------------------------------------------------


def _at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """`day` at wall-clock `clock` in `zone`, as UTC (fold=0: see the module docstring)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def _first_handoff(pattern: ShiftPattern, zone: ZoneInfo) -> datetime:
    """The first handoff at or after the pattern's start date, in UTC."""
    day = pattern.start
    if pattern.type == "weekly":
        wanted = WEEKDAYS.index(pattern.handoff_weekday)
        day = day + timedelta(days=(wanted - day.weekday()) % 7)
    return _at_local(day, pattern.handoff_time, zone)


def _regular(pattern: ShiftPattern, zone: ZoneInfo, at: datetime) -> tuple[int, datetime, datetime]:
    """(index, start, end) of the pattern's shift covering `at`; `at` is after the first one."""
    first = _first_handoff(pattern, zone)
    if pattern.type in ("daily", "weekly"):
        period = 7 if pattern.type == "weekly" else 1
        first_day = first.astimezone(zone).date()

        def handoff(n: int) -> datetime:
            return _at_local(first_day + timedelta(days=n * period), pattern.handoff_time, zone)

        index = (at.astimezone(zone).date() - first_day).days // period
        if handoff(index) > at:
            index -= 1
        return index, handoff(index), handoff(index + 1)
    length = _length(pattern)
    index = int((at - first) // length)
    start = first + index * length
    return index, start, start + length


def _length(pattern: ShiftPattern) -> timedelta:
    if pattern.type == "custom":
        assert pattern.shift_length is not None
        return pattern.shift_length
    return timedelta(hours=1)


def _windows(
    restriction: Restriction, zone: ZoneInfo, first_day: date, last_day: date
) -> Iterator[tuple[datetime, datetime]]:
    """The restriction's windows that open on local days first_day..last_day, in UTC."""
    overnight = restriction.ends <= restriction.starts
    day = first_day
    while day <= last_day:
        if WEEKDAYS[day.weekday()] in restriction.days:
            end_day = day + timedelta(days=1) if overnight else day
            yield (
                _at_local(day, restriction.starts, zone),
                _at_local(end_day, restriction.ends, zone),
            )
        day += timedelta(days=1)


def _window_at(
    restrictions: list[Restriction], zone: ZoneInfo, at: datetime
) -> tuple[datetime, datetime] | None:
    """The restriction window covering `at` (widest if several do), or None if off duty."""
    today = at.astimezone(zone).date()
    covering = [
        window
        for restriction in restrictions
        for window in _windows(restriction, zone, today - timedelta(days=1), today)
        if window[0] <= at < window[1]
    ]
    if not covering:
        return None
    return min(w[0] for w in covering), max(w[1] for w in covering)


# Who holds a rotation ------------------------------------------------------------------


def pattern_shift(
    rotation: Rotation, layer: str | None, pattern: ShiftPattern, at: datetime
) -> Shift | None:
    """The shift of one pattern (the rotation itself or a layer) covering `at`, cut to its
    restriction window; None before the pattern starts or outside its restrictions."""
    zone = ZoneInfo(rotation.timezone)
    if at < _first_handoff(pattern, zone):
        return None
    index, start, end = _regular(pattern, zone, at)
    if pattern.restrictions:
        window = _window_at(pattern.restrictions, zone, at)
        if window is None:
            return None
        start, end = max(start, window[0]), min(end, window[1])
    person = pattern.members[index % len(pattern.members)]
    return Shift(rotation.id, person, start, end, layer=layer)


def shift_at(rotation: Rotation, at: datetime) -> Shift | None:
    """The regular (not overridden) shift covering `at`: the first layer on duty decides."""
    for name, pattern in rotation.patterns:
        shift = pattern_shift(rotation, name, pattern, at)
        if shift is not None:
            return shift
    return None


def config_overrides(rotation: Rotation) -> list[Override]:
    """The rotation's `overrides:` from the config file; times without an offset are local."""
    zone = ZoneInfo(rotation.timezone)

    def aware(value: datetime) -> datetime:
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)

    return [
        Override(rotation.id, o.person, aware(o.starts), aware(o.ends)) for o in rotation.overrides
    ]


def _all_overrides(rotation: Rotation, overrides: Iterable[Override]) -> list[Override]:
    return [*config_overrides(rotation), *(o for o in overrides if o.rotation == rotation.id)]


def _answer(rotation: Rotation, at: datetime, overrides: list[Override]) -> Shift | None:
    """Who holds `rotation` at `at` given its full override list (ends may be early)."""
    covering = [o for o in overrides if o.start <= at < o.end]
    if covering:
        # The latest-starting override wins; among equal starts, the newest row.
        chosen = max(covering, key=lambda o: (o.start, o.id or 0))
        return Shift(rotation.id, chosen.person, chosen.start, chosen.end, True, None, chosen.id)
    return shift_at(rotation, at)


def _same(a: Shift | None, b: Shift | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.person, a.override, a.override_id, a.layer) == (
        b.person,
        b.override,
        b.override_id,
        b.layer,
    )


def boundaries(
    rotation: Rotation, start: datetime, end: datetime, overrides: Iterable[Override] = ()
) -> list[datetime]:
    """Every moment in (start, end) at which the answer for `rotation` may change."""
    zone = ZoneInfo(rotation.timezone)
    points: set[datetime] = set()
    for _name, pattern in rotation.patterns:
        first = _first_handoff(pattern, zone)
        points.add(first)
        cursor = max(start, first)
        while cursor < end:
            _, _, shift_end = _regular(pattern, zone, cursor)
            points.add(shift_end)
            cursor = shift_end
        first_day = start.astimezone(zone).date() - timedelta(days=1)
        last_day = end.astimezone(zone).date()
        for restriction in pattern.restrictions:
            for window_start, window_end in _windows(restriction, zone, first_day, last_day):
                points.update((window_start, window_end))
    for o in _all_overrides(rotation, overrides):
        points.update((o.start, o.end))
    return sorted(p for p in points if start < p < end)


def on_call(rotation: Rotation, at: datetime, overrides: Iterable[Override] = ()) -> Shift | None:
    """Who holds `rotation` at `at`; the shift's end is the next moment that changes."""
    every = _all_overrides(rotation, overrides)
    shift = _answer(rotation, at, every)
    if shift is None:
        return None
    for point in boundaries(rotation, at, shift.end, every):
        if not _same(_answer(rotation, point, every), shift):
            return replace(shift, end=point)
    return shift


def segments(
    rotation: Rotation,
    start: datetime,
    end: datetime,
    overrides: Iterable[Override] = (),
    include_gaps: bool = False,
) -> list[Shift]:
    """The rotation's shifts overlapping [start, end), in order, each at its true extent
    (the first may begin before `start`, the last end after `end`).

    With `include_gaps`, stretches with nobody on call come back as shifts whose person is
    the empty string.
    """
    every = _all_overrides(rotation, overrides)
    out: list[Shift] = []
    current: Shift | None = None
    current_start = start
    for point in [start, *boundaries(rotation, start, end, every)]:
        answer = _answer(rotation, point, every)
        if point != start and _same(answer, current):
            continue
        if point != start:
            out.extend(_closed(rotation, current, current_start, point, include_gaps))
        current, current_start = answer, point
    # Close the last one at its real end (which may be past `end`).
    last = on_call(rotation, current_start, every) if current is not None else None
    out.extend(_closed(rotation, current, current_start, last.end if last else end, include_gaps))
    if out and out[0].person and out[0].start == start:
        before = on_call(rotation, start - timedelta(microseconds=1), every)
        if before is not None and _same(before, out[0]):
            out[0] = replace(out[0], start=_true_start(rotation, before, start, every))
    return out


def _true_start(rotation: Rotation, shift: Shift, at: datetime, every: list[Override]) -> datetime:
    """Where the shift held at `at` really began: its own start, or the last moment before
    `at` where a higher layer or an override let go of it."""
    for point in reversed(boundaries(rotation, shift.start, at, every)):
        if not _same(_answer(rotation, point - timedelta(microseconds=1), every), shift):
            return point
    return shift.start


def _closed(
    rotation: Rotation, shift: Shift | None, start: datetime, end: datetime, include_gaps: bool
) -> list[Shift]:
    if shift is None:
        return [Shift(rotation.id, "", start, end)] if include_gaps else []
    return [replace(shift, start=start, end=end)]


# Targets and steps ---------------------------------------------------------------------


def resolve_target(
    cfg: Config, target: Target, at: datetime, overrides: Iterable[Override] = ()
) -> list[Recipient]:
    """Expand one target into recipients at `at`; an empty list means nobody is reachable."""
    kind, ref = target.kind, target.ref
    if kind == "person":
        return [Recipient("person", ref, "person")]
    if kind == "channel":
        return [Recipient("channel", ref, "channel")]
    if kind == "team":
        team = cfg.team(ref)
        return [Recipient("person", m, f"team {ref}") for m in team.members] if team else []
    if kind == "rotation":
        rotation = cfg.rotation(ref)
        shift = _answer(rotation, at, _all_overrides(rotation, overrides)) if rotation else None
        return [Recipient("person", shift.person, f"rotation {ref}")] if shift else []
    out: list[Recipient] = []
    for inner in cfg.roles.get(ref, []):
        out.extend(
            Recipient(r.kind, r.id, f"role {ref}")
            for r in resolve_target(cfg, inner, at, overrides)
        )
    return out


def recipients(
    cfg: Config, step: Step, at: datetime, overrides: Iterable[Override] = ()
) -> list[Recipient]:
    """All recipients of a step, each person or channel once, in target order."""
    seen: set[tuple[str, str]] = set()
    out: list[Recipient] = []
    overrides = list(overrides)
    for target in step.targets:
        for recipient in resolve_target(cfg, target, at, overrides):
            key = (recipient.kind, recipient.id)
            if key not in seen:
                seen.add(key)
                out.append(recipient)
    return out


# Coverage gaps -------------------------------------------------------------------------


def coverage_gaps(
    cfg: Config, start: datetime, end: datetime, overrides: Iterable[Override] = ()
) -> list[Gap]:
    """Every stretch in [start, end) where a rotation, a role or a policy step reaches nobody.

    The answer can only change at a rotation boundary, so each stretch between two
    boundaries is checked once at its start.
    """
    overrides = list(overrides)
    points = {start}
    for rotation in cfg.rotations:
        points.update(boundaries(rotation, start, end, overrides))
    subjects: list[tuple[str, list[Target]]] = [
        (f"rotation {r.id}", [Target(rotation=r.id)]) for r in cfg.rotations
    ]
    subjects += [(f"role {name}", targets) for name, targets in cfg.roles.items()]
    for name, policy in cfg.policies.items():
        subjects += [(f"policy {name} level {i}", s.targets) for i, s in enumerate(policy.steps)]
    open_gaps: dict[str, datetime] = {}
    gaps: list[Gap] = []
    for point in sorted(points):
        for subject, targets in subjects:
            empty = not any(resolve_target(cfg, t, point, overrides) for t in targets)
            if empty and subject not in open_gaps:
                open_gaps[subject] = point
            elif not empty and subject in open_gaps:
                gaps.append(Gap(subject, open_gaps.pop(subject), point))
    gaps += [Gap(subject, since, end) for subject, since in open_gaps.items()]
    return sorted(gaps, key=lambda g: (g.start, g.subject))
