"""Who is on call at time t: a pure function of the config, overrides and an explicit `now`.

Daily and weekly shifts hand off at a local wall-clock time in the rotation's time zone,
so a Monday 09:00 Europe/Berlin handoff stays at 09:00 local across daylight-saving
changes (the shift that spans the change is an hour shorter or longer). Hourly and custom
shifts are fixed lengths of elapsed time from the first handoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from escalator.config import WEEKDAYS, Config, Rotation, Step, Target


@dataclass(frozen=True)
class Override:
    """`person` holds `rotation` from `start` (inclusive) to `end` (exclusive)."""

    rotation: str
    person: str
    start: datetime
    end: datetime
    id: int | None = None


@dataclass(frozen=True)
class Shift:
    rotation: str
    person: str
    start: datetime
    end: datetime
    override: bool = False


@dataclass(frozen=True)
class Recipient:
    """A person to page, or a chat channel to post to; `via` says how the step reached it."""

    kind: str  # "person" | "channel"
    id: str
    via: str


def _local_boundary(day: date, rotation: Rotation) -> datetime:
    zone = ZoneInfo(rotation.timezone)
    return datetime.combine(day, rotation.handoff_time, tzinfo=zone).astimezone(UTC)


def _first_handoff(rotation: Rotation) -> datetime:
    """The first handoff at or after the rotation's start date, in UTC."""
    day = rotation.start
    if rotation.type == "weekly":
        wanted = WEEKDAYS.index(rotation.handoff_weekday)
        day = day + timedelta(days=(wanted - day.weekday()) % 7)
    return _local_boundary(day, rotation)


def shift_at(rotation: Rotation, at: datetime) -> Shift | None:
    """The regular (not overridden) shift covering `at`, or None before the rotation starts."""
    first = _first_handoff(rotation)
    if at < first:
        return None
    if rotation.type in ("daily", "weekly"):
        period_days = 7 if rotation.type == "weekly" else 1
        zone = ZoneInfo(rotation.timezone)
        local_day = at.astimezone(zone).date()
        first_day = first.astimezone(zone).date()
        index = (local_day - first_day).days // period_days
        start = _local_boundary(first_day + timedelta(days=index * period_days), rotation)
        if start > at:
            index -= 1
            start = _local_boundary(first_day + timedelta(days=index * period_days), rotation)
        end = _local_boundary(first_day + timedelta(days=(index + 1) * period_days), rotation)
    else:
        length = rotation.shift_length if rotation.type == "custom" else timedelta(hours=1)
        assert length is not None
        index = int((at - first) // length)
        start = first + index * length
        end = start + length
    person = rotation.members[index % len(rotation.members)]
    return Shift(rotation.id, person, start, end)


def on_call(rotation: Rotation, at: datetime, overrides: Iterable[Override] = ()) -> Shift | None:
    """Who holds `rotation` at `at`: the latest-starting override covering it, else the shift."""
    covering = [o for o in overrides if o.rotation == rotation.id and o.start <= at < o.end]
    if covering:
        chosen = max(covering, key=lambda o: (o.start, o.id or 0))
        return Shift(rotation.id, chosen.person, chosen.start, chosen.end, override=True)
    return shift_at(rotation, at)


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
        shift = on_call(rotation, at, overrides) if rotation else None
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
