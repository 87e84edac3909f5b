"""Escalation policies (targets, steps, repeats) and the routes that pick one per alert."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from escalator.config.base import Duration, Strict, Urgency


class Target(Strict):
    """Who a step reaches: exactly one of person, team, rotation, role or chat channel."""

    person: str | None = None
    team: str | None = None
    rotation: str | None = None
    role: str | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [k for k in ("person", "team", "rotation", "role", "channel") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("a target names exactly one of person, team, rotation, role, channel")
        return self

    @property
    def kind(self) -> str:
        for key in ("person", "team", "rotation", "role", "channel"):
            if getattr(self, key):
                return key
        raise AssertionError("validated target has a kind")

    @property
    def ref(self) -> str:
        value = getattr(self, self.kind)
        assert isinstance(value, str)
        return value


class Step(Strict):
    after: Duration = timedelta(0)
    condition: Literal["unacknowledged", "unresolved"] = "unacknowledged"
    targets: list[Target] = Field(min_length=1)
    urgency: Urgency = "page"


class Repeat(Strict):
    """Repeat the last step `times` more times, `every` apart, while `condition` holds.

    `condition` defaults to the last step's; `unacknowledged` stops the repeats once someone
    is working the incident even when the last step itself pages while "still down".
    """

    every: Duration
    times: int = Field(ge=1, le=100)
    condition: Literal["unacknowledged", "unresolved"] | None = None

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("`every` must be longer than zero")
        return value


class Policy(Strict):
    description: str | None = None
    response_time: Duration | None = None
    ack_timeout: Duration | None = None
    steps: list[Step] = Field(min_length=1)
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        afters = [s.after for s in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps must be ordered by `after`")
        return self


class LabelMatcher(Strict):
    """All of `match` (equality) and `match_re` (anchored regular expressions) must hold."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"label {label!r}: invalid regular expression: {exc}") from exc
        return value

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        # Anchored like Alertmanager's matchers: `critical|warning` must match the whole value.
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match_re.items())


class Route(LabelMatcher):
    """First matching route wins; all of `match` (equality) and `match_re` must hold."""

    policy: str
