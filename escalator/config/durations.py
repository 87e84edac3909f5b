"""Durations written the way Alertmanager and Prometheus write them (`30s`, `5m`, `1h30m`).

Config authors in the Alertmanager world already read `group_interval: 5m`; using the
same grammar means a policy reads like the routing tree that feeds it. The grammar is
Prometheus' own (model.ParseDuration): units `y w d h m s ms`, largest first, each at most
once (`1h30m`, never `30m1h` or `1m1m`), a year being 365 days; `0` alone is zero.

Durations are whole milliseconds. `format_duration` writes every millisecond back (the
Prometheus String() form: weeks only when exact), so parse(format(d)) == d: policy
snapshots are stored through it, and a `repeat.every: 250ms` that came back as `0s` would
fail validation on every tick of the alert that carries it.
"""

from __future__ import annotations

import re
from datetime import timedelta

_MS = 1
_SECOND = 1000 * _MS
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY
_YEAR = 365 * _DAY

# (unit, milliseconds, written only when it divides the duration exactly), largest first.
_UNITS = (
    ("y", _YEAR, False),
    ("w", _WEEK, True),
    ("d", _DAY, False),
    ("h", _HOUR, False),
    ("m", _MINUTE, False),
    ("s", _SECOND, False),
    ("ms", _MS, False),
)
# Each unit optional, in descending order, at most once: the order of the groups enforces it.
_GRAMMAR = re.compile("".join(rf"(?:([0-9]+){unit})?" for unit, _, _ in _UNITS))


def _invalid(text: str, why: str) -> ValueError:
    return ValueError(
        f"invalid duration {text!r}: {why}; use numbers with units y, w, d, h, m, s, ms, "
        "largest first and each at most once, e.g. 30s, 5m, 1h30m, 1500ms"
    )


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; raise ValueError naming the offending text."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    match = _GRAMMAR.fullmatch(value) if value else None
    if match is None or not any(match.groups()):
        why = "empty" if not value else "not a duration in Prometheus' grammar"
        raise _invalid(text, why)
    total = sum(int(n) * size for n, (_, size, _) in zip(match.groups(), _UNITS, strict=True) if n)
    try:
        return timedelta(milliseconds=total)
    except OverflowError:
        raise _invalid(text, "too long") from None


def to_milliseconds(delta: timedelta) -> int:
    """Whole milliseconds in `delta` (sub-millisecond parts are rounded, half to even)."""
    return round(delta / timedelta(milliseconds=1))


def format_duration(delta: timedelta) -> str:
    """Render a timedelta in the same grammar, largest units first (`1h5m`, `1s500ms`)."""
    ms = to_milliseconds(delta)
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size, exact in _UNITS:
        if exact and ms % size:
            continue
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return sign + "".join(parts)
