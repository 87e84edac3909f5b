"""Value types every part of the configuration shares: durations, zones, identifiers,
secrets, weekdays, rate limits and template sources."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from escalator.config.durations import format_duration, parse_duration, to_milliseconds


def _to_timedelta(value: Any) -> timedelta:
    # Whole milliseconds, like the text form: a policy snapshot stores the text, and what
    # it stores must read back as the same policy.
    if isinstance(value, timedelta):
        return timedelta(milliseconds=to_milliseconds(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(milliseconds=round(value * 1000))
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected a duration such as 30s, 5m or 2h, got {value!r}")


Duration = Annotated[
    timedelta, BeforeValidator(_to_timedelta), PlainSerializer(format_duration, return_type=str)
]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
        ) from exc
    return value


TimeZoneName = Annotated[str, BeforeValidator(_check_zone)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


def _printable(value: str) -> str:
    # A name is shown in pages, calendar feeds (.ics lines, where CR/LF break the format)
    # and terminals: control characters in it are a configuration mistake, refused here.
    if re.search(r"[\x00-\x1f\x7f-\x9f]", value):
        raise ValueError("must not contain control characters (line breaks, tabs, escapes)")
    return value


DisplayName = Annotated[str, AfterValidator(_printable)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """A secret named by where it lives, so the YAML itself never holds it."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env` (a variable name) or `file` (a path)")
        return self

    def resolve(self) -> str | None:
        """The secret's value, or None when its variable is unset or its file is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            return value.strip() if value and value.strip() else None
        assert self.file is not None
        try:
            text = self.file.read_text().strip()
        except (OSError, UnicodeDecodeError):
            # Missing, unreadable (permissions, a directory) or not text: no value, and
            # `problem()` says why, so check-config and serve name it instead of a traceback.
            return None
        return text or None

    def problem(self) -> str:
        """Why `resolve()` gives no value, in words for a config error."""
        if self.env is not None:
            return f"{self.describe()} has no value"
        assert self.file is not None
        try:
            self.file.read_text()
        except FileNotFoundError:
            return f"{self.file} does not exist"
        except UnicodeDecodeError:
            return f"{self.file} is not UTF-8 text"
        except OSError as exc:
            return f"{self.file} cannot be read ({exc.strerror or exc})"
        return f"{self.file} is empty"

    def describe(self) -> str:
        return f"${self.env}" if self.env is not None else str(self.file)


Method = Literal["console", "sms", "voice", "email"]
Urgency = Literal["page", "notify"]


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def weekday_list(value: Any) -> Any:
    """`weekdays` and `weekend` are shorthands for the usual day lists."""
    shorthands = {"weekdays": list(WEEKDAYS[:5]), "weekend": list(WEEKDAYS[5:]), "daily": WEEKDAYS}
    if isinstance(value, str):
        if value not in shorthands:
            raise ValueError(f"{value!r}: give a list of days, `weekdays`, `weekend` or `daily`")
        return list(shorthands[value])
    return value


class RateLimit(Strict):
    """At most `max` messages to one person by one method per `per`."""

    max: int = Field(ge=1)
    per: Duration


class TemplateSource(Strict):
    """A Jinja2 template given inline (`text`) or as a file path (`file`)."""

    text: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TemplateSource:
        if (self.text is None) == (self.file is None):
            raise ValueError("give exactly one of `text` (the template) or `file` (a path)")
        return self


# What a method's template can replace besides incident notices (escalator.notify.templates):
# the parts of an escalation page, and the shift-change notice.
