"""`escalator simulate`: a dry run of one alert's escalation on a virtual clock.

It drives the daemon's own code: `machine.step` decides, `Paging.reaches` and
`Paging.recipients` (escalator.alerts) resolve the roster at each moment, and the
person's contact rules (the same `_deliveries` the engine writes outbox rows from) say
which method fires when. Only the clock is virtual: it jumps from one due action to the
next instead of waiting, so the 3 a.m. page can be checked at 3 p.m.

What the sender would later do is modelled too: an acknowledgement cancels the unsent
deliveries of `unacknowledged` steps (a voice call due a minute after the SMS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from escalator.config import Config
from escalator.escalation import machine
from escalator.escalation.machine import Ack, AlertState, CancelPages, Decision, Note, Page, Tick
from escalator.escalation.paging import Paging
from escalator.roster.contacts import deliveries
from escalator.roster.oncall import Override

# Without `--until`, stop when the policy has nothing left to do, or after this long.
DEFAULT_HORIZON = timedelta(hours=24)


@dataclass
class SimEvent:
    """One line of the simulation: a delivery (`page`) or a timeline note."""

    at: datetime
    offset: timedelta
    kind: str  # "page" or a timeline kind: nobody_to_page, step_skipped, acknowledged, ...
    level: int | None = None
    recipient: str | None = None
    via: str | None = None
    method: str | None = None
    address: str | None = None
    urgency: str | None = None
    condition: str | None = None
    reason: str | None = None
    status: str = "sent"  # for pages: "sent" or "cancelled (...)"
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat().replace("+00:00", "Z")
        out["offset_seconds"] = int(self.offset.total_seconds())
        out["offset"] = format_offset(self.offset)
        return out


@dataclass
class Scenario:
    name: str
    ack_at: timedelta | None
    events: list[SimEvent] = field(default_factory=list)
    final_status: str = "triggered"

    def pages(self) -> list[SimEvent]:
        return [e for e in self.events if e.kind == "page" and e.status == "sent"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ack_at": None if self.ack_at is None else format_offset(self.ack_at),
            "final_status": self.final_status,
            "events": [e.as_dict() for e in self.events],
        }


def format_offset(delta: timedelta) -> str:
    """`+0m`, `+5m`, `+1h45m`, `+1m30s`: minutes since the alert opened."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + f"{minutes}m" + (f"{secs}s" if secs else "")
    return f"+{text}"


def run(
    cfg: Config,
    policy_name: str,
    start: datetime,
    methods: frozenset[str],
    overrides: list[Override] | None = None,
    ack_at: timedelta | None = None,
    ack_by: str = "(simulated)",
    until: timedelta | None = None,
) -> Scenario:
    """Walk one alert of `policy_name` opened at `start`, optionally acknowledged after
    `ack_at`, until `until` (default: until nothing more can happen, at most a day)."""
    policy = cfg.policies[policy_name]
    paging = Paging(cfg, methods, list(overrides or []))
    name = "no acknowledgement" if ack_at is None else f"acknowledged at {format_offset(ack_at)}"
    scenario = Scenario(name, ack_at)
    horizon = start + (until if until is not None else DEFAULT_HORIZON)
    ack_time = None if ack_at is None else start + ack_at
    state = AlertState.opened(start)
    pending: list[SimEvent] = []  # deliveries not yet due, which an ack may still cancel

    def apply(decision: Decision, now: datetime) -> AlertState:
        for effect in decision.effects:
            if isinstance(effect, Note):
                # A level that reached nobody is the state's level; a skipped one names
                # itself in the detail (the state still holds the last level paged).
                level = decision.state.level if effect.kind == "nobody_to_page" else None
                scenario.events.append(
                    SimEvent(now, now - start, effect.kind, level=level, detail=effect.detail)
                )
            elif isinstance(effect, CancelPages):
                for delivery in pending:
                    moot = effect.scope == "all" or delivery.condition == "unacknowledged"
                    if delivery.at > now and moot and delivery.status == "sent":
                        delivery.status = f"cancelled ({decision.state.status})"
            elif isinstance(effect, Page):
                _page(effect, now)
        return decision.state

    def _page(effect: Page, now: datetime) -> None:
        whom = paging.recipients(effect.step, now)
        for recipient in whom:
            ways = deliveries(paging.config, paging.methods, recipient, effect.step.urgency)  # type: ignore[arg-type]  # recipients exist only with a config
            if not ways:
                scenario.events.append(
                    SimEvent(
                        now,
                        now - start,
                        "unreachable",
                        level=effect.level,
                        recipient=recipient.id,
                        detail=f"{recipient.id} has no contact method that can be used",
                    )
                )
            for method, address, delay in ways:
                event = SimEvent(
                    now + delay,
                    now + delay - start,
                    "page",
                    level=effect.level,
                    recipient=recipient.id,
                    via=recipient.via,
                    method=method,
                    address=address,
                    urgency=effect.step.urgency,
                    # As the engine writes it: unconditional pages only a resolve cancels.
                    condition=effect.step.condition if effect.conditional else None,
                    reason=effect.reason if not effect.repeat else f"repeat {effect.repeat}",
                )
                scenario.events.append(event)
                pending.append(event)

    while True:
        due = machine.next_action_at(state, policy)
        # At the same instant the due step fires first: an alert must open (and page its
        # first level) before anyone can acknowledge it.
        if ack_time is not None and ack_time <= horizon and (due is None or ack_time < due):
            state = apply(
                machine.step(state, Ack(by=ack_by, via="simulate"), ack_time, policy), ack_time
            )
            ack_time = None
            continue
        if due is None or due > horizon:
            break
        state = apply(machine.step(state, Tick(), due, policy, paging), due)
    scenario.final_status = state.status
    # Deliveries delayed past the horizon would not have happened yet.
    scenario.events = sorted((e for e in scenario.events if e.at <= horizon), key=lambda e: e.at)
    return scenario
