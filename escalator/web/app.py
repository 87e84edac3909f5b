"""The daemon's HTTP side: one router per surface over a shared auth dependency.

- `webhooks`  Alertmanager's webhook (`server.webhook_token`)
- `api`       the API the CLI uses remotely (`server.api_token`)
- `calendar`  rotation feeds for calendar apps (`server.api_token`)
- `twilio`    SMS and voice replies and delivery reports (signed by Twilio)
- `health`    /healthz, /readyz and /metrics
- `heartbeats` POST /heartbeats/{name} (each heartbeat's own token), the heartbeat list
- `maintenance` maintenance windows (`server.api_token`)
- `events_v2` PagerDuty's Events API v2 (the routing key in the body)
- `ui`        the web console under /ui/ (its own logins, sessions and CSRF)

In front of them all, `limits.EdgeGuard` authenticates what it can before reading a body,
caps and times every body, and refuses DNS-rebinding and cross-site requests in
quick-start mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from escalator.daemon import Daemon
from escalator.web.api import api_router
from escalator.web.auth import authorized, install_error_handlers, is_loopback
from escalator.web.calendar import calendar_router
from escalator.web.events_v2 import events_v2_router
from escalator.web.health import health_router
from escalator.web.heartbeats import heartbeats_router
from escalator.web.limits import EdgeGuard
from escalator.web.maintenance import maintenance_router
from escalator.web.openapi import ERRORS
from escalator.web.slack import slack_router
from escalator.web.twilio import twilio_router
from escalator.web.ui import install_console
from escalator.web.webhooks import webhooks_router

__all__ = ["create_app", "is_loopback"]


def create_app(daemon: Daemon, run_engine: bool = True, bind_host: str | None = None) -> FastAPI:
    """The app `serve` runs; `bind_host` (the address it listens on) is one of the Host
    names a loopback client may use in quick-start mode (web/limits.py)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_engine:
            daemon.start()
        try:
            yield
        finally:
            if run_engine:
                daemon.runner.stop()

    app = FastAPI(
        title="escalator",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=ERRORS(),  # what the guard can answer on any route (health's too)
    )
    install_error_handlers(app)
    app.include_router(webhooks_router(daemon))
    app.include_router(health_router(daemon))
    app.include_router(api_router(daemon))
    app.include_router(calendar_router(daemon, lambda r: authorized(r, daemon.api_token)))
    app.include_router(twilio_router(daemon))  # signed by Twilio, not by bearer token
    app.include_router(heartbeats_router(daemon, lambda r: authorized(r, daemon.api_token)))
    app.include_router(maintenance_router(daemon, lambda r: authorized(r, daemon.api_token)))
    app.include_router(events_v2_router(daemon))  # the routing key authenticates
    install_console(app, daemon)  # the web console under /ui/ (its own auth and CSRF)
    app.include_router(slack_router(daemon))  # signed by Slack (X-Slack-Signature)
    # Outermost: every request passes the guard (Host, auth, capped and timed body) first.
    app.add_middleware(EdgeGuard, daemon=daemon, bind_host=bind_host)
    return app
