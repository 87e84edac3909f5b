"""The incident communication protocol of the runbook, and runbooks themselves."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from escalator.config.base import Duration, Identifier, Strict, TemplateSource
from escalator.config.policies import Target

IncidentNotice = Literal[
    "initial",
    "status_update",
    "stakeholder_update",
    "resolution",
    "update_reminder",
    "postmortem_reminder",
    "multiple_critical",
]


class MultipleCritical(Strict):
    """The seed's "multiple critical alerts simultaneously": page `targets` once per episode."""

    enabled: bool = True
    threshold: int = Field(default=3, ge=2)
    severity: str = "critical"
    targets: list[Target] = Field(default_factory=lambda: [Target(role="engineering_lead")])


class Incidents(Strict):
    """The seed's communication protocol for incidents (alerts of `severities`)."""

    enabled: bool = True
    severities: list[str] = Field(default_factory=lambda: ["critical"])
    service: str = "CredLink API"
    # The chat channel the initial notification, status updates and resolution go to.
    channel: Identifier = "incidents"
    channel_prefix: str = "incident-"
    status_update_every: Duration = timedelta(minutes=15)
    stakeholder_update_every: Duration = timedelta(minutes=30)
    stakeholders: list[Target] = Field(default_factory=list)
    stakeholder_emails: list[str] = Field(default_factory=list)
    postmortem_within: Duration = timedelta(hours=24)
    postmortem_reminder_every: Duration = timedelta(hours=8)
    # Stop reminding about a post-mortem this long after it fell overdue.
    postmortem_stop_after: Duration = timedelta(days=7)
    multiple_critical: MultipleCritical = MultipleCritical()
    # Per delivery method (chat, email, sms, console, ...), templates replacing the defaults.
    templates: dict[str, dict[IncidentNotice, TemplateSource]] = Field(default_factory=dict)

    @field_validator("status_update_every", "stakeholder_update_every", "postmortem_reminder_every")
    @classmethod
    def _positive_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("stakeholder_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise ValueError(f"{address!r} is not an email address")
        return value


class Runbook(Strict):
    """What the seed's runbook says first: where it is and what to do in the first minutes."""

    url: str = Field(pattern=r"^https?://\S+$")
    title: str | None = None
    impact: list[str] = Field(default_factory=list)
    immediate_actions: list[str] = Field(default_factory=list)
