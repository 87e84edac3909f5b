"""Wiring: one object that holds what a running daemon is made of.

`escalator serve` builds a Daemon and hands it to the HTTP app; tests build one directly
to drive the same engine and sender without a process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from escalator.alerts import Paging, PolicyCache, load_overrides
from escalator.clock import Clock, SystemClock
from escalator.config import Config
from escalator.engine import EscalationEngine, Runner
from escalator.notify.base import Channel
from escalator.notify.console import ConsoleChannel
from escalator.notify.sender import Sender
from escalator.store.db import make_engine, session_factory, upgrade

log = logging.getLogger("escalator")


def build_channels(config: Config) -> dict[str, Channel]:
    """Channels that are configured; methods with none fall back to the console."""
    channels: dict[str, Channel] = {}
    if config.channels.console.enabled:
        channels["console"] = ConsoleChannel()
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

    def paging(self, session: Session, now: datetime) -> Paging:
        return Paging(self.config, self.sender.methods, load_overrides(session, now))

    def start(self) -> None:
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
    sender = Sender(factory, channels, clock, config.engine)
    policies = PolicyCache()
    engine = EscalationEngine(factory, config, clock, sender.methods, policies)
    runner = Runner(engine, sender, config.engine.tick_interval)
    return Daemon(
        config=config,
        db=db,
        factory=factory,
        clock=clock,
        engine=engine,
        sender=sender,
        runner=runner,
        policies=policies,
        webhook_token=config.server.webhook_token.resolve()
        if config.server.webhook_token
        else None,
        api_token=config.server.api_token.resolve() if config.server.api_token else None,
    )
