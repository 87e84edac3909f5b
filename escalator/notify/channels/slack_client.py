"""The Slack Web API through the official `slack_sdk`, what Slack's errors mean for the
outbox, and who is who between the roster and Slack.

Errors are classified like Twilio's (escalator.notify.channels.twilio_sms):
- `ratelimited` (HTTP 429): the SDK waits out `Retry-After` and repeats the call when the
  wait is at most `channels.slack.max_retry_after`; a longer wait ends the attempt as
  `retry`, and the outbox tries again later. 5xx, `internal_error` and network errors retry.
- `channel_not_found`, `not_in_channel`, `is_archived`: `failed`, so the sender falls back
  to the console and notes it on the alert's timeline.
- `invalid_auth`, `not_authed`, `token_revoked`, `account_inactive`: `failed`, and the app
  is marked unhealthy: `/readyz` answers 503 naming the error until a call works again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Gauge
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from escalator.config import Config, Person
from escalator.config import SlackChannel as SlackSettings
from escalator.notify.channels.base import SendResult

log = logging.getLogger("escalator.slack")

AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive"})
# The channel is gone or closed to the bot: no retry will help; fall back to the console.
CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def retry_after(response: HttpResponse) -> float | None:
    for key, value in response.headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


class BoundedRateLimitHandler(RateLimitErrorRetryHandler):
    """The SDK's rate-limit handler (sleep `Retry-After`, call again), but only for waits
    short enough to spend inside one attempt; a longer one is left to the outbox."""

    def __init__(self, max_wait: timedelta, max_retry_count: int = 1):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait.total_seconds()

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response)
        return wait is None or wait <= self.max_wait


def make_client(settings: SlackSettings) -> WebClient:
    """A WebClient for the bot token; `api_base_url` (tests only) points it at a fake."""
    token = settings.bot_token.resolve()
    if token is None:
        raise ValueError(f"channels.slack.bot_token: {settings.bot_token.describe()} is unset")
    kwargs: dict[str, Any] = {}
    if settings.api_base_url:
        kwargs["base_url"] = settings.api_base_url.rstrip("/") + "/"
    return WebClient(
        token=token,
        timeout=max(int(settings.timeout.total_seconds()), 1),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            BoundedRateLimitHandler(settings.max_retry_after),
        ],
        **kwargs,
    )


def error_code(exc: Exception) -> str | None:
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = response if isinstance(response, dict) else getattr(response, "data", None)
        if isinstance(data, dict):
            return str(data.get("error") or "") or None
    return None


def retry_after_of(exc: Exception) -> float | None:
    """Seconds a `ratelimited` answer asks to wait (1 when it names none), else None."""
    if not isinstance(exc, SlackApiError):
        return None
    status = getattr(exc.response, "status_code", 200)
    if status != 429 and error_code(exc) != "ratelimited":
        return None
    headers = getattr(exc.response, "headers", {}) or {}
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return max(float(raw), 0.0) if raw is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


AUTH_FAILED = Gauge(
    "escalator_slack_auth_failed",
    "1 while Slack refuses the bot token (invalid_auth and the like), else 0",
)


@dataclass
class Health:
    """The last authentication failure, if no call has worked since (for /readyz and the
    `escalator_slack_auth_failed` gauge)."""

    problem: str | None = None

    def failed_auth(self, error: str) -> None:
        if self.problem is None:
            log.error("slack: %s: check channels.slack.bot_token", error)
        self.problem = f"slack {error}: check channels.slack.bot_token"
        AUTH_FAILED.set(1)

    def worked(self) -> None:
        if self.problem is not None:
            log.info("slack: the bot token works again")
        self.problem = None
        AUTH_FAILED.set(0)


def classify(exc: Exception, health: Health | None = None) -> SendResult:
    """Turn an SDK or transport error into retry / failed (never raises)."""
    if isinstance(exc, SlackApiError):
        code = error_code(exc) or "unknown_error"
        status = getattr(exc.response, "status_code", 200)
        detail = f"slack {code}"
        if status == 429 or code == "ratelimited":
            headers = getattr(exc.response, "headers", {}) or {}
            wait = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            return SendResult("retry", detail + (f" (Retry-After {wait}s)" if wait else ""))
        if code in AUTH_ERRORS:
            if health is not None:
                health.failed_auth(code)
            return SendResult("failed", detail)
        if code in TRANSIENT_ERRORS or status >= 500:
            return SendResult("retry", f"{detail} (HTTP {status})")
        return SendResult("failed", detail)
    return SendResult("retry", f"slack unreachable: {type(exc).__name__}: {exc}")


class Directory:
    """Who is who: roster people <-> Slack users, looked up by e-mail and cached.

    A person's `slack_user` wins; otherwise `users.lookupByEmail` with their `email`. A
    Slack user is a roster person when their ID is someone's `slack_user` or their profile
    e-mail is someone's `email`. Answers are kept for `ttl`, "not found" for `miss_ttl`
    (someone who joins Slack during an incident is found minutes later, not hours).
    """

    def __init__(
        self, client: WebClient, config: Config, ttl: float = 3600.0, miss_ttl: float = 300.0
    ):
        self._client = client
        self._config = config
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._by_email: dict[str, tuple[float, str | None]] = {}
        self._by_user: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def _cached(self, cache: dict[str, tuple[float, str | None]], key: str) -> tuple[bool, Any]:
        with self._lock:
            hit = cache.get(key)
        if hit is not None:
            ttl = self._ttl if hit[1] is not None else self._miss_ttl
            if time.monotonic() - hit[0] < ttl:
                return True, hit[1]
        return False, None

    def _store(self, cache: dict[str, tuple[float, str | None]], key: str, value: Any) -> None:
        with self._lock:
            cache[key] = (time.monotonic(), value)

    def user_of(self, person: Person) -> str | None:
        """The person's Slack user ID, or None when Slack does not know them."""
        if person.slack_user:
            return person.slack_user
        if not person.email:
            return None
        email = person.email.lower()
        hit, value = self._cached(self._by_email, email)
        if hit:
            return value  # type: ignore[no-any-return]
        try:
            user = self._client.users_lookupByEmail(email=email)["user"]["id"]
        except SlackApiError as exc:
            if error_code(exc) != "users_not_found":
                raise
            user = None
        self._store(self._by_email, email, user)
        return user  # type: ignore[no-any-return]

    def person_of(self, user_id: str) -> Person | None:
        """The roster person behind a Slack user, or None (an unknown user)."""
        for person in self._config.people:
            if person.slack_user and person.slack_user == user_id:
                return person
        hit, email = self._cached(self._by_user, user_id)
        if not hit:
            try:
                profile = self._client.users_info(user=user_id)["user"].get("profile") or {}
                email = str(profile.get("email") or "").lower() or None
            except SlackApiError as exc:
                if error_code(exc) != "user_not_found":
                    raise
                email = None
            self._store(self._by_user, user_id, email)
        if not email:
            return None
        return next((p for p in self._config.people if p.email and p.email.lower() == email), None)

