"""The daemon itself: HTTP server and console auth, and the engine's timing."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, IPvAnyNetwork

from escalator.config.base import Duration, Secret, Strict


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
    # Bodies: Alertmanager's webhook and Events API v2 take up to max_body_bytes, every other
    # endpoint (API, Twilio, Slack, console forms, heartbeats) max_api_body_bytes; a body
    # must arrive whole within body_timeout and a request's headers within header_timeout.
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_api_body_bytes: int = Field(default=64 << 10, ge=1024)
    body_timeout: Duration = timedelta(seconds=10)
    header_timeout: Duration = timedelta(seconds=10)
    # With a token unset (quick start), loopback clients are trusted: the Host names they may
    # use besides IP literals, localhost, single-label names and public_url's host (a
    # name a DNS-rebinding page could point at 127.0.0.1 is refused otherwise).
    allowed_hosts: list[str] = Field(default_factory=list)
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
