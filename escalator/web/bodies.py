"""Strict parsing of request bodies: every malformed body is a 4xx with the reason.

`json.loads` alone turns hostile input into exceptions the routes never expected (and the
client a 500): invalid UTF-8 (UnicodeDecodeError), an integer of 4,300+ digits (ValueError
from int()), nesting thousands deep (RecursionError), and it accepts NaN/Infinity, which
are not JSON. `parse_json` answers each with `BadBody` (400) naming the problem, and hands
back the value with its strings normalised (`escalator.text.clean`: no lone surrogates, no
NUL), so both stores accept exactly the same input.

`Moment` and `ID` are the API's bounded types: a date whose UTC conversion falls outside
years 1..9999 (Python's range) or an id beyond a 64-bit integer is a 422 at the edge, not
an OverflowError on SQLite and a DataError (503) on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from escalator.text import clean_tree

MAX_DEPTH = 64
MAX_INT_DIGITS = 40
MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER (64-bit) on SQLite
# A \u escape that decodes to NUL or to a surrogate (paired ones too: a cheap superset).
_ESCAPED = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
# json.loads makes exactly these types (parse_int and parse_float below return int, float).
_CONTAINERS = frozenset({dict, list})
_SCALARS = frozenset({str, int, float, bool, type(None)})


class BadBody(ValueError):
    """A body that is not acceptable JSON; `code` is 400 (or 415 for an encoding)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadBody(f"integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadBody(f"number {text[:20]}... is out of range")
    return value


def _constant(name: str) -> Any:
    raise BadBody(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """The nesting depth of parsed JSON, level by level (no recursion on hostile input).
    A container whose children are all scalars (every labels and annotations map) is
    settled by one C-level pass over their types: visiting each string in Python cost 15%
    of the webhook's time on a repeated 100-alert body."""
    deepest, level = 0, [value] if type(value) in _CONTAINERS else []
    while level:
        deepest += 1
        if deepest > MAX_DEPTH:
            return deepest
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            if not _SCALARS.issuperset(map(type, children)):
                below.extend(child for child in children if type(child) in _CONTAINERS)
        level = below
    return deepest


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"body is not UTF-8: invalid byte at offset {exc.start}") from exc


def bound_depth(value: Any, text: str | None = None) -> None:
    """BadBody (400) when `value` (parsed from `text`, if given) nests deeper than
    MAX_DEPTH."""
    # Few brackets cannot nest deep: the count is C-speed and settles most bodies.
    if text is not None and text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    if _depth(value) > MAX_DEPTH:
        raise BadBody(f"body is not JSON: nested deeper than {MAX_DEPTH}")


def parse_json(raw: bytes, *, bounded: bool = True) -> Any:
    """The JSON value in `raw`, strings cleaned; BadBody (400) with the reason otherwise.

    `bounded=False` leaves the depth bound to the caller (`bound_depth`): for a route
    whose schema takes no nesting beyond its own, which checks depth only for what it
    refuses or keeps as sent."""
    text = decode(raw)
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BadBody:
        raise
    except json.JSONDecodeError as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadBody(f"body is not JSON: nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # anything else json/int refuse
        raise BadBody(f"body is not JSON: {exc}") from exc
    if bounded:
        bound_depth(value, text)
    # Strictly decoded UTF-8 holds no surrogate or NUL unless a \u escape wrote one.
    return clean_tree(value) if _ESCAPED.search(text) else value


def in_range(value: datetime) -> datetime:
    """A date that converts to UTC (so stores and arithmetic on it cannot overflow)."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError as exc:
        raise ValueError("date out of range (years 1 to 9999 in UTC)") from exc
    if not 1970 <= utc.year <= 9000:
        raise ValueError("date out of range (years 1970 to 9000)")
    return value


Moment = Annotated[datetime, AfterValidator(in_range)]
ID = Annotated[int, Field(ge=1, le=MAX_ID)]
