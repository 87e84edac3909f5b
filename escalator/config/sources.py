"""Alert sources besides Alertmanager: heartbeats, Events v2 integrations, and recurring
maintenance windows."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from escalator.config.base import (
    WEEKDAYS,
    Duration,
    Identifier,
    RateLimit,
    Secret,
    Strict,
    TimeZoneName,
    Weekday,
    weekday_list,
)
from escalator.config.policies import LabelMatcher


class Heartbeat(Strict):
    """A dead man's switch: something that must beat every `interval`, paged when silent.

    Fed by Alertmanager (`alertmanager`: a matcher for an always-firing alert such as
    Watchdog; each webhook carrying it is a beat and it is never paged itself) and/or by
    `POST /heartbeats/{name}` with the bearer `token` (cron jobs, backups). Overdue past
    `interval + grace`, an alert `alertname=HeartbeatMissed, heartbeat=<name>` opens with
    `severity` and `labels`, routed like any alert (or to `policy`); the next beat resolves it.
    """

    name: Identifier
    interval: Duration
    grace: Duration = timedelta(0)
    severity: str = "critical"
    policy: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    alertmanager: LabelMatcher | None = None
    token: Secret | None = None
    summary: str | None = None
    # After the daemon starts, wait this long before calling a heartbeat missed (default:
    # interval + grace): a daemon that was down cannot tell a silent source from its own
    # downtime, and must not page for the latter.
    startup_grace: Duration | None = None

    @model_validator(mode="after")
    def _fed_somehow(self) -> Heartbeat:
        if self.interval <= timedelta(0):
            raise ValueError("`interval` must be longer than zero")
        if self.grace < timedelta(0):
            raise ValueError("`grace` must not be negative")
        if self.alertmanager is None and self.token is None:
            raise ValueError(
                "a heartbeat needs `alertmanager` (a matcher such as {match: {alertname: "
                "Watchdog}}) and/or `token` (for POST /heartbeats/NAME)"
            )
        if self.alertmanager is not None and not (
            self.alertmanager.match or self.alertmanager.match_re
        ):
            raise ValueError("`alertmanager` needs at least one `match` or `match_re` label")
        return self

    @property
    def first_wait(self) -> timedelta:
        return self.startup_grace if self.startup_grace is not None else self.interval + self.grace


class Integration(Strict):
    """A sender of PagerDuty Events API v2 (Grafana, Sentry, Datadog, ...), known by its
    routing key; its alerts get `labels` and go to `policy` (or through the routes)."""

    name: Identifier
    key: Secret
    labels: dict[str, str] = Field(default_factory=dict)
    policy: str | None = None
    # PagerDuty's own limit per routing key; past it the answer is 429 (senders retry).
    rate_limit: RateLimit = RateLimit(max=120, per=timedelta(minutes=1))


class RecurringMaintenance(LabelMatcher):
    """A weekly maintenance window: on `days`, from the wall-clock time `from` in `timezone`
    for `duration`. Matching alerts that open inside it page no one until it ends."""

    name: Identifier
    days: Annotated[list[Weekday], BeforeValidator(weekday_list)] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1
    )
    starts: time = Field(alias="from")
    duration: Duration
    timezone: TimeZoneName = "UTC"
    reason: str = "scheduled maintenance"

    @model_validator(mode="after")
    def _sensible(self) -> RecurringMaintenance:
        if not (self.match or self.match_re):
            raise ValueError("a maintenance window needs `match` or `match_re` labels")
        if not timedelta(0) < self.duration <= timedelta(days=7):
            raise ValueError("`duration` must be longer than zero and at most 7 days")
        return self
