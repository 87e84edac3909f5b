"""Rotations: shift patterns, layers, restrictions and per-rotation overrides."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from escalator.config.base import (
    WEEKDAYS,
    DisplayName,
    Duration,
    Identifier,
    Strict,
    TimeZoneName,
    Weekday,
    weekday_list,
)


class Restriction(Strict):
    """A weekly window, in the rotation's time zone, when a layer is on duty.

    `to` at or before `from` ends on the next day, so `from: "17:00", to: "09:00"` is a
    night shift and `from` equal to `to` is the whole day.
    """

    days: Annotated[list[Weekday], BeforeValidator(weekday_list)] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1
    )
    starts: time = Field(alias="from")
    ends: time = Field(alias="to")


class ShiftPattern(Strict):
    """How shifts are cut and handed from member to member; a rotation or one of its layers."""

    type: Literal["hourly", "daily", "weekly", "custom"] = "weekly"
    shift_length: Duration | None = None
    handoff_time: time = time(9, 0)
    handoff_weekday: Weekday = "monday"
    start: date = date(2026, 1, 5)
    members: list[str] = Field(default_factory=list)
    restrictions: list[Restriction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _custom_needs_length(self) -> ShiftPattern:
        if self.type == "custom" and (
            self.shift_length is None or self.shift_length <= timedelta(0)
        ):
            raise ValueError("a custom rotation needs a positive `shift_length`")
        return self


class Layer(ShiftPattern):
    """One layer of a layered rotation; the first layer on duty at a moment decides."""

    name: Identifier
    members: list[str] = Field(min_length=1)


class RotationOverride(Strict):
    """`person` holds the rotation from `from` to `until` (times without an offset are in
    the rotation's time zone)."""

    person: str
    starts: datetime = Field(alias="from")
    ends: datetime = Field(alias="until")

    @model_validator(mode="after")
    def _ordered(self) -> RotationOverride:
        if (self.starts.tzinfo is None) == (self.ends.tzinfo is None) and self.ends <= self.starts:
            raise ValueError("`until` must be after `from`")
        return self


_PATTERN_KEYS = ("type", "shift_length", "handoff_time", "handoff_weekday", "start", "restrictions")


class Rotation(ShiftPattern):
    """A rotation hands the shift from one member to the next at a local wall-clock time.

    The common case is one pattern (`members` plus the shift fields). A layered rotation
    gives `layers` instead, each with its own pattern and time restrictions (say business
    hours by one group, the rest by another); the first layer on duty at a moment decides.
    """

    id: Identifier
    name: DisplayName | None = None
    timezone: TimeZoneName = "UTC"
    layers: list[Layer] = Field(default_factory=list)
    overrides: list[RotationOverride] = Field(default_factory=list)
    # Tell the incoming person this long before their shift starts; null: no notices.
    shift_notice: Duration | None = timedelta(minutes=15)

    @model_validator(mode="after")
    def _members_or_layers(self) -> Rotation:
        if self.layers:
            if self.members:
                raise ValueError("give `members` or `layers`, not both")
            misplaced = sorted(set(_PATTERN_KEYS) & self.model_fields_set)
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: with `layers`, set these on each layer")
            names = [layer.name for layer in self.layers]
            if len(set(names)) != len(names):
                raise ValueError("layer names must be unique within a rotation")
        elif not self.members:
            raise ValueError("a rotation needs `members` (or `layers`)")
        return self

    @property
    def patterns(self) -> list[tuple[str | None, ShiftPattern]]:
        """(layer name, pattern) in precedence order; one unnamed pattern without layers."""
        if self.layers:
            return [(layer.name, layer) for layer in self.layers]
        return [(None, self)]
