"""The YAML configuration: people, teams, rotations, roles, policies, routes, channels.

Validation is strict (unknown keys are errors: a typo in `conditon:` must not silently
fall back to a default at 3 a.m.) and every error names the file, the path inside it and,
where the YAML parser can tell, the line.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PlainSerializer,
    field_validator,
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
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
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
        except FileNotFoundError:
            return None
        return text or None

    def describe(self) -> str:
        return f"${self.env}" if self.env is not None else str(self.file)


Method = Literal["console", "sms", "voice", "email"]
Urgency = Literal["page", "notify"]


class ContactRule(Strict):
    """One contact method of a person, tried `after` the page for them was raised."""

    method: Method
    after: Duration = timedelta(0)


def _default_rules() -> dict[str, list[ContactRule]]:
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
    name: str | None = None
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
    name: str | None = None
    members: list[str] = Field(min_length=1)


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


def _weekday_list(value: Any) -> Any:
    """`weekdays` and `weekend` are shorthands for the usual day lists."""
    shorthands = {"weekdays": list(WEEKDAYS[:5]), "weekend": list(WEEKDAYS[5:]), "daily": WEEKDAYS}
    if isinstance(value, str):
        if value not in shorthands:
            raise ValueError(f"{value!r}: give a list of days, `weekdays`, `weekend` or `daily`")
        return list(shorthands[value])
    return value


class Restriction(Strict):
    """A weekly window, in the rotation's time zone, when a layer is on duty.

    `to` at or before `from` ends on the next day, so `from: "17:00", to: "09:00"` is a
    night shift and `from` equal to `to` is the whole day.
    """

    days: Annotated[list[Weekday], BeforeValidator(_weekday_list)] = Field(
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
    name: str | None = None
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


class ConsoleChannel(Strict):
    enabled: bool = True


class TwilioChannel(Strict):
    """Twilio SMS and voice from one number; Twilio calls back at `server.public_url`."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: Secret
    from_number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    sms: bool = True
    voice: bool = True
    timeout: Duration = timedelta(seconds=10)
    # TEST ONLY: where the twilio SDK sends its REST calls (a loopback fake of the API).
    # Leave unset in production: the SDK then talks to https://api.twilio.com.
    api_base_url: str | None = None


class EmailChannel(Strict):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded with STARTTLS (port 587); tls: implicit TLS (465);
    # none: unencrypted (a local relay only).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    from_address: str
    # A CA bundle to trust instead of the system's (a private CA, or a test's self-signed cert).
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=10)


class ChatChannel(Strict):
    """Slack-compatible incoming webhooks, one URL per channel name used in `targets`."""

    webhooks: dict[Identifier, Secret] = Field(min_length=1)
    timeout: Duration = timedelta(seconds=10)


class WebhookChannel(Strict):
    """A generic JSON POST, for targets `{channel: NAME}` whose name is listed here."""

    endpoints: dict[Identifier, Secret] = Field(min_length=1)
    timeout: Duration = timedelta(seconds=10)


class SlackChannel(Strict):
    """A Slack app (README, "Slack"): Block Kit pages updated in place, incident channels,
    buttons and `/escalator`. Targets `{channel: NAME}` whose NAME is in `channels` post here.
    """

    bot_token: Secret
    signing_secret: Secret
    # Policy channel names -> the Slack channel each posts to (a channel ID such as
    # C0123ABCD, or a public channel's name).
    channels: dict[Identifier, str] = Field(default_factory=dict)
    # One channel per incident (#incident-YYYYMMDD-HHMM-<id>), its people invited.
    incident_channels: bool = True
    # Invited to every incident channel besides the on-call and the commander.
    invite: list[Target] = Field(default_factory=lambda: [Target(role="engineering_lead")])
    archive_after_postmortem: bool = True
    timeout: Duration = timedelta(seconds=10)
    # A `ratelimited` answer whose Retry-After is at most this long is waited out within the
    # attempt; a longer one ends the attempt and the outbox retries it later.
    # Keep it well under the attempt's deadline: the wait happens inside the attempt.
    max_retry_after: Duration = timedelta(seconds=5)
    # TEST ONLY: where slack_sdk sends Web API calls (a loopback fake). Unset in production.
    api_base_url: str | None = None


class RateLimit(Strict):
    """At most `max` messages to one person by one method per `per`."""

    max: int = Field(ge=1)
    per: Duration


def _default_rate_limits() -> dict[str, RateLimit]:
    return {
        "sms": RateLimit(max=5, per=timedelta(minutes=10)),
        "voice": RateLimit(max=3, per=timedelta(minutes=10)),
        "email": RateLimit(max=10, per=timedelta(minutes=10)),
    }


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
PageTemplate = Literal["page", "bundle", "ack_hint", "test_page", "shift_notice"]


LaneMethod = Literal["console", "sms", "voice", "email", "chat", "webhook", "slack"]

# Concurrent sends per lane: Twilio takes many parallel requests; an SMTP relay or a chat
# webhook is kinder to a few. The console is one: a page is recorded before the next is
# printed, so a crash repeats at most one console page.
_LANE_POOL = {"sms": 8, "voice": 8, "email": 4, "chat": 4, "webhook": 4, "slack": 4, "console": 1}
# The hard bound on one attempt. Above the clients' own timeouts (10 s by default) so they
# normally fire first; Slack opens an incident channel in ~9 API calls, hence more.
_LANE_DEADLINE = {"slack": timedelta(seconds=45), "console": timedelta(seconds=5)}


class Lane(Strict):
    """One delivery method's lane (escalator.notify.lanes): how many sends may be in flight
    at once, and how long one attempt may take before its slot is freed as a `retry`."""

    pool: int | None = Field(default=None, ge=1, le=256)
    deadline: Duration | None = None
    # Passed to the HTTP and SMTP clients as their connect timeout.
    connect_timeout: Duration = timedelta(seconds=5)


class Channels(Strict):
    console: ConsoleChannel = ConsoleChannel()
    twilio: TwilioChannel | None = None
    email: EmailChannel | None = None
    chat: ChatChannel | None = None
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    # Pages to one person by one method that fall due within this long of the last message
    # wait for the end of the window and go out as one message listing every alert.
    bundle_window: Duration = timedelta(seconds=10)
    rate_limits: dict[Literal["sms", "voice", "email", "chat", "webhook"], RateLimit] = Field(
        default_factory=_default_rate_limits
    )
    # Alerts with the same values of these labels are one incident: the first page of an
    # incident a person has not yet been sent (within the rate window) is never held back.
    incident_labels: list[str] = Field(default_factory=lambda: ["alertname"])
    # Per delivery method (console, sms, voice, email, chat, webhook), page templates
    # replacing the shipped ones (escalator/notify/templates/page*.j2, bundle*.j2, ack_hint*.j2).
    templates: dict[str, dict[PageTemplate, TemplateSource]] = Field(default_factory=dict)
    # Per method: the lane's pool size and attempt deadline (defaults in `lane()`).
    lanes: dict[LaneMethod, Lane] = Field(default_factory=dict)

    def lane(self, method: str) -> tuple[int, timedelta, timedelta]:
        """(pool, deadline, connect timeout) of `method`'s lane, defaults filled in."""
        lane = self.lanes.get(method, Lane())  # type: ignore[call-overload]
        pool = lane.pool or _LANE_POOL.get(method, 4)
        deadline = lane.deadline or _LANE_DEADLINE.get(method, timedelta(seconds=20))
        return pool, deadline, lane.connect_timeout


class ConsoleAuth(Strict):
    """Who may use the web console (/ui/) and how a person is recognised there.

    Behind an authenticating proxy (oauth2-proxy and the like) list the proxy's addresses:
    `header` is believed only on connections from them, and names a person by email.
    Without one, people log in with a personal token (`escalator ui-token PERSON`).
    """

    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    header: str = Field(default="X-Forwarded-Email", pattern=r"^[A-Za-z0-9-]+$")
    session_lifetime: Duration = timedelta(hours=12)


class Server(Strict):
    console: ConsoleAuth = ConsoleAuth()
    webhook_token: Secret | None = None
    api_token: Secret | None = None
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # The URL Twilio reaches this daemon at (https in production); webhook signatures are
    # checked against it, so it must be exactly what is configured in the Twilio console.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")


class Engine(Strict):
    tick_interval: Duration = timedelta(seconds=1)
    batch_size: int = Field(default=500, ge=1)
    # Unused since delivery lanes (a page is owned while its worker heartbeats); kept so
    # existing configs still load.
    send_lease: Duration = timedelta(seconds=30)
    send_retry_base: Duration = timedelta(seconds=2)
    send_max_attempts: int = Field(default=8, ge=1)
    # SIGTERM: stop claiming, give sends in flight this long to finish, then hand back what
    # is left so another replica sends it at once.
    shutdown_grace: Duration = timedelta(seconds=10)


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
    days: Annotated[list[Weekday], BeforeValidator(_weekday_list)] = Field(
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


class Config(Strict):
    server: Server = Server()
    engine: Engine = Engine()
    people: list[Person] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    rotations: list[Rotation] = Field(default_factory=list)
    roles: dict[Identifier, list[Target]] = Field(default_factory=dict)
    policies: dict[Identifier, Policy] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str | None = None
    channels: Channels = Channels()
    incidents: Incidents = Incidents()
    runbooks: dict[str, Runbook] = Field(default_factory=dict)
    heartbeats: list[Heartbeat] = Field(default_factory=list)
    integrations: list[Integration] = Field(default_factory=list)
    maintenance: list[RecurringMaintenance] = Field(default_factory=list)

    def heartbeat(self, name: str) -> Heartbeat | None:
        return next((h for h in self.heartbeats if h.name == name), None)

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.people if p.id == person_id), None)

    def team(self, team_id: str) -> Team | None:
        return next((t for t in self.teams if t.id == team_id), None)

    def rotation(self, rotation_id: str) -> Rotation | None:
        return next((r for r in self.rotations if r.id == rotation_id), None)

    def route(self, labels: dict[str, str]) -> str | None:
        """The policy for an alert: first matching route, else `default_policy`, else severity."""
        for route in self.routes:
            if route.matches(labels):
                return route.policy
        if self.default_policy:
            return self.default_policy
        severity = labels.get("severity")
        return severity if severity in self.policies else None
