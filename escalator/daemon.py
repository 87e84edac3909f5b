"""Wiring: one object that holds what a running daemon is made of.

`escalator serve` builds a Daemon and hands it to the HTTP app; tests build one directly
to drive the same engine and sender without a process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import ChatChannel as ChatChannelSettings
from escalator.config import Config
from escalator.engine.escalations import EscalationEngine
from escalator.engine.runner import Runner
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.ingest.alertmanager import CommittedFiring
from escalator.ingest.events_v2_store import Integrations
from escalator.metrics import Metrics
from escalator.notify.channels.base import Channel
from escalator.notify.channels.console import ConsoleChannel
from escalator.notify.channels.slack import SlackApp
from escalator.notify.metrics import DeliveryMetrics
from escalator.notify.sender import Sender
from escalator.roster.overrides import load_overrides
from escalator.services.context import ServiceContext
from escalator.store.clock import Clock, SystemClock
from escalator.store.db import make_engine, session_factory, upgrade

log = logging.getLogger("escalator")


def build_channels(config: Config) -> dict[str, Channel]:
    """Channels that are configured; methods with none fall back to the console.

    Secrets are resolved here, once; a configured channel whose secret has no value is an
    error at start-up rather than a silent console fallback at 3 a.m.
    """
    from escalator.notify.channels.chat import ChatChannel
    from escalator.notify.channels.email import EmailChannel
    from escalator.notify.channels.twilio_sms import TwilioSmsChannel, make_client
    from escalator.notify.channels.twilio_voice import TwilioVoiceChannel
    from escalator.notify.channels.webhook import WebhookChannel

    settings = config.channels
    public_url = config.server.public_url
    channels: dict[str, Channel] = {}
    if settings.console.enabled:
        channels["console"] = ConsoleChannel()
    if settings.twilio is not None:
        client = make_client(settings.twilio, settings.lane("sms")[2].total_seconds())
        if settings.twilio.sms:
            channels["sms"] = TwilioSmsChannel(client, settings.twilio.from_number, public_url)
        if settings.twilio.voice:
            if public_url is None:
                raise ValueError("channels.twilio.voice needs server.public_url for its TwiML")
            channels["voice"] = TwilioVoiceChannel(client, settings.twilio.from_number, public_url)
    if settings.email is not None:
        channels["email"] = EmailChannel(settings.email, settings.lane("email")[2].total_seconds())
    for name, section, cls in (
        ("chat", settings.chat, ChatChannel),
        ("webhook", settings.webhook, WebhookChannel),
    ):
        if section is None:
            continue
        urls = section.webhooks if isinstance(section, ChatChannelSettings) else section.endpoints
        resolved = {}
        for key, secret in urls.items():
            value = secret.resolve()
            if value is None:
                raise ValueError(f"channels.{name}: {key}: {secret.describe()} has no value")
            resolved[key] = value
        connect = settings.lane(name)[2].total_seconds()
        channels[name] = cls(resolved, section.timeout.total_seconds(), connect)
    if settings.slack is not None:
        from escalator.notify.channels.slack import SlackApp, SlackChannel

        channels["slack"] = SlackChannel(SlackApp(config))
    return channels


@dataclass
class Daemon:
    config: Config
    db: Engine
    factory: sessionmaker[Session]
    clock: Clock
    engine: EscalationEngine
    sender: Sender
    runner: Runner
    policies: PolicyCache = field(default_factory=PolicyCache)
    webhook_token: str | None = None
    api_token: str | None = None
    committed: CommittedFiring = field(default_factory=CommittedFiring)
    integrations: Integrations | None = None  # PagerDuty Events v2 senders, keys resolved
    slack: SlackApp | None = None  # the Slack app, when channels.slack is configured
    metrics: Metrics = field(default_factory=Metrics)  # this daemon's own registry
    services: ServiceContext = field(init=False)

    def __post_init__(self) -> None:
        # What the API and Twilio replies act through: the daemon's clock, channels and
        # policy cache, and a wake-up so a changed alert is looked at now.
        self.services = ServiceContext(
            self.factory, self.config, self.sender.methods, self.policies, self.clock,
            on_change=self.runner.wake,
        )  # fmt: skip
        if self.integrations is None:
            self.integrations = Integrations(self.config)

    def paging(self, session: Session, now: datetime) -> Paging:
        return Paging(self.config, self.sender.methods, load_overrides(session, now))

    def start(self) -> None:
        if self.slack is not None:
            self.slack.check_auth_soon()  # a bad token shows in /readyz from the start
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.db.dispose()


def build_daemon(
    config: Config,
    database_url: str,
    clock: Clock | None = None,
    channels: dict[str, Channel] | None = None,
    migrate: bool = True,
) -> Daemon:
    clock = clock or SystemClock()
    db = make_engine(database_url)
    if migrate:
        upgrade(db)
    factory = session_factory(db)
    channels = build_channels(config) if channels is None else channels
    # The sender's leases and delivery records need no fsync per commit (see make_engine).
    sender_db = make_engine(database_url, durable=False)
    # One connection of its own for the delivery worker's heartbeat (escalator.notify.leases).
    heartbeat_db = make_engine(database_url, durable=False, pool_size=1, max_overflow=1)

    def _dispose_delivery(_engine: Engine) -> None:
        sender_db.dispose()
        heartbeat_db.dispose()

    event.listen(db, "engine_disposed", _dispose_delivery)
    # The daemon owns its metrics, on its own registry (escalator.metrics), served by /metrics.
    metrics = Metrics()
    sender = Sender(
        session_factory(sender_db),
        channels,
        clock,
        config.engine,
        config=config,
        metrics=DeliveryMetrics(metrics.registry),
        heartbeat_factory=session_factory(heartbeat_db),
    )
    slack = getattr(channels.get("slack"), "app", None)
    if slack is not None:
        slack.clock = clock
        slack.bind(factory)  # where it remembers its messages and incident channels
    if slack is not None:
        slack.health.gauge = metrics.slack_auth_failed
    policies = PolicyCache()
    engine = EscalationEngine(factory, config, clock, sender.methods, policies, metrics=metrics)
    runner = Runner(engine, sender, config.engine.tick_interval, config.engine.shutdown_grace)
    integrations = Integrations(config)  # ValueError when a key has no value
    return Daemon(
        config=config,
        db=db,
        factory=factory,
        clock=clock,
        engine=engine,
        sender=sender,
        runner=runner,
        policies=policies,
        integrations=integrations,
        slack=slack,
        metrics=metrics,
        webhook_token=config.server.webhook_token.resolve()
        if config.server.webhook_token
        else None,
        api_token=config.server.api_token.resolve() if config.server.api_token else None,
    )
