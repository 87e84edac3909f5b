"""What every service needs from its caller: the store, the configuration, and whose clock.

The daemon builds one `ServiceContext` (its clock, its channels' methods, its policy cache,
a wake-up for its engine); the CLI working on the database builds one with no clock, so
the database's clock stamps what a person does, never the laptop's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Config
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.roster.overrides import load_overrides
from escalator.services import actors
from escalator.store.clock import Clock, database_now


class ServiceError(Exception):
    """A request the service refuses (unknown person, incident, rotation...): a 4xx."""


class NotFound(ServiceError):
    """The thing named does not exist: a 404."""


@dataclass(frozen=True)
class Actor:
    """Who does something, and through which way in (cli, api, sms, voice)."""

    person: str
    via: str


@dataclass
class ServiceContext:
    factory: sessionmaker[Session]
    config: Config | None = None  # None: a CLI without a config file (acks still work)
    methods: frozenset[str] = frozenset()  # delivery methods pages may use
    policies: PolicyCache = field(default_factory=PolicyCache)
    clock: Clock | None = None  # the daemon's; None: the database's clock
    on_change: Callable[[], None] | None = None  # the daemon wakes its engine and sender

    def now(self, session: Session) -> datetime:
        return self.clock.now() if self.clock is not None else database_now(session)

    def paging(self, session: Session, now: datetime) -> Paging:
        """A roster snapshot for this moment: the overrides in force are read here, once."""
        if self.config is None:
            return Paging(None, frozenset())
        return Paging(self.config, self.methods, load_overrides(session, now))

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def check_actor(self, actor: Actor) -> None:
        """The one rule for who may act, whichever way in (services/actors.py): the CLI
        locally, the daemon for the API, the console, phones and Slack all end here."""
        try:
            actors.check(self.config, actor.person)
        except actors.UnknownActor as exc:
            raise ServiceError(str(exc)) from exc
