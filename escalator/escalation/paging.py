"""What the shell needs to turn Page effects into outbox rows at one moment: the config,
the working delivery methods and a snapshot of the overrides in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from escalator.roster.oncall import Override, Recipient, recipients

if TYPE_CHECKING:
    from escalator.config import Config, Step


@dataclass
class Paging:
    """What the shell needs to turn a Page effect into outbox rows at one moment, and the
    roster snapshot `machine.step` asks (`reaches`).

    The overrides are data read by the caller before stepping (no loader, no query from
    inside the machine). Recipients are remembered per step and time, because a tick or a
    body pages many alerts through the same few steps.
    """

    config: Config | None  # None for acks and resolves, which never page
    methods: frozenset[str]  # delivery methods with a working channel
    overrides: list[Override] = field(default_factory=list)
    _recipients: dict[tuple[int, datetime], list[Recipient]] = field(
        default_factory=dict, init=False, repr=False
    )

    def recipients(self, step: Step, at: datetime) -> list[Recipient]:
        if self.config is None:
            raise RuntimeError("paging needs the configuration")
        # Keyed by identity: steps are frozen members of cached policies, alive as long as
        # this Paging (one tick or one request).
        key = (id(step), at)
        found = self._recipients.get(key)
        if found is None:
            found = recipients(self.config, step, at, self.overrides)
            self._recipients[key] = found
        return list(found)

    def reaches(self, step: Step, at: datetime) -> bool:
        return bool(self.recipients(step, at))
