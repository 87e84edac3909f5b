"""Delivery channels (console, Twilio, email, chat, webhook, Slack) and how pages are
bundled, rate-limited and templated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from escalator.config.base import Duration, Identifier, RateLimit, Secret, Strict, TemplateSource
from escalator.config.policies import Target


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


def _default_rate_limits() -> dict[Literal["sms", "voice", "email", "chat", "webhook"], RateLimit]:
    return {
        "sms": RateLimit(max=5, per=timedelta(minutes=10)),
        "voice": RateLimit(max=3, per=timedelta(minutes=10)),
        "email": RateLimit(max=10, per=timedelta(minutes=10)),
    }


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
