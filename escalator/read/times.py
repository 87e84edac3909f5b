"""One rule for every time the CLI (and the read models the API shares) prints.

- JSON: RFC 3339 in UTC with a `Z` (`2026-11-29T13:05:00Z`, fractional seconds kept when
  the store has them), so scripts parse one format whatever verb or backend produced it.
- Tables: the reader's zone, spelled out (`Sun 2026-11-29 08:05 EST`), followed by how long
  ago or how soon (`5m ago`, `in 4m`), so a 3 a.m. reader need not convert anything.

The zone is `--tz` / `$ESCALATOR_TZ`, else the time zone of the configured person the
CLI acts as, else the machine's local zone. The roster's tables (`schedule`,
`override list`) keep the rotation's own zone unless `--tz` is given: a handoff is
defined there. Stdlib only: `escalator --help` imports this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# An instant written with a UTC offset of zero: what `datetime.isoformat()` gives.
_UTC_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(?:\+00:00|-00:00)$")


def rfc3339(value: datetime | None) -> str | None:
    """The JSON form: UTC, `Z`. Naive datetimes are UTC (the store's convention)."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    """An RFC 3339 / ISO 8601 instant (`Z` or an offset; naive means UTC), aware."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def json_ready(data: Any) -> Any:
    """`data` with every datetime, and every ISO string at offset +00:00, in the JSON form:
    the last step before anything is printed as JSON, whichever module built the rows."""
    if isinstance(data, datetime):
        return rfc3339(data)
    if isinstance(data, str):
        match = _UTC_OFFSET.match(data)
        return f"{match.group(1)}Z" if match else data
    if isinstance(data, Mapping):
        return {k: json_ready(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_ready(v) for v in data]
    return data


def zone(name: str | None) -> tzinfo:
    """The zone called `name` (IANA), or the machine's local zone for None."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from exc


def short(delta: timedelta) -> str:
    """The two largest units of a duration: `2h5m`, `3d4h`, `45s`."""
    seconds = int(abs(delta.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts[:2])


def relative(value: datetime | str | None, now: datetime) -> str:
    """`5m ago`, `in 4m`, `now` (within a second), `-` for nothing."""
    if value is None or value == "":
        return "-"
    at = parse(value) if isinstance(value, str) else value
    seconds = (at - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    text = short(timedelta(seconds=seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def local(value: datetime | str | None, tz: tzinfo) -> str:
    """`Sun 2026-11-29 08:05 EST`: the wall-clock time in `tz`, its zone spelled out (the
    format of `escalator schedule`, whose rows are in the rotation's zone)."""
    if value is None or value == "":
        return "-"
    at = parse(value) if isinstance(value, str) else value
    return at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def local_full(value: datetime | str | None, tz: tzinfo) -> str:
    """`Sun 2026-11-29 08:05:09 EST`: as `local`, with the year and seconds (`show`)."""
    if value is None or value == "":
        return "-"
    at = parse(value) if isinstance(value, str) else value
    return at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")


def stamp_local(value: datetime | str | None, tz: tzinfo) -> str:
    """`2026-11-29T08:05:09-05:00`: one word, to the second, in `tz` (timeline columns)."""
    if value is None or value == "":
        return "-"
    at = parse(value) if isinstance(value, str) else value
    return at.astimezone(tz).isoformat(timespec="seconds")


def cell(value: datetime | str | None, tz: tzinfo, now: datetime) -> str:
    """A table cell: the local time and how far away it is (`08:05 EST (in 4m)`)."""
    if value is None or value == "":
        return "-"
    return f"{local(value, tz)} ({relative(value, now)})"
