"""People and teams: who can be paged, and by which methods in what order."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from escalator.config.base import (
    DisplayName,
    Duration,
    Identifier,
    Method,
    Strict,
    TimeZoneName,
    Urgency,
)


class ContactRule(Strict):
    """One contact method of a person, tried `after` the page for them was raised."""

    method: Method
    after: Duration = timedelta(0)


def _default_rules() -> dict[Urgency, list[ContactRule]]:
    return {
        "page": [
            ContactRule(method="sms"),
            ContactRule(method="voice", after=timedelta(minutes=1)),
            ContactRule(method="email"),
        ],
        "notify": [ContactRule(method="email")],
    }


class Person(Strict):
    id: Identifier
    name: DisplayName | None = None
    phone: str | None = None
    email: str | None = None
    timezone: TimeZoneName = "UTC"
    rules: dict[Urgency, list[ContactRule]] = Field(default_factory=_default_rules)
    # Their Slack member ID (U...), when their Slack account is not found by `email`.
    slack_user: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+[1-9]\d{6,14}", value):
            raise ValueError(f"{value!r} is not an E.164 phone number such as +15550100001")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @property
    def display(self) -> str:
        return self.name or self.id

    def address(self, method: str) -> str | None:
        """Where `method` reaches this person (phone for SMS and voice), or None."""
        return {"sms": self.phone, "voice": self.phone, "email": self.email}.get(method)


class Team(Strict):
    id: Identifier
    name: DisplayName | None = None
    members: list[str] = Field(min_length=1)
