"""Durations written the way Alertmanager and Prometheus write them (`30s`, `5m`, `1h30m`).

Config authors in the Alertmanager world already read `group_interval: 5m`; using the
same grammar means a policy reads like the routing tree that feeds it.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse `1h30m`-style text; raise ValueError naming the offending text."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    pos = 0
    total = timedelta(0)
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit "
            "(ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m"
        )
    return total


def format_duration(delta: timedelta) -> str:
    """Render a timedelta back in the same grammar, largest units first (`1h5m`, `30s`)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + "".join(parts)
