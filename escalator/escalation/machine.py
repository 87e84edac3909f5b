"""The alert state machine: a pure function from (state, event, now, policy) to a decision.

Nothing here reads a clock, a database or the network. The shell loads an alert, calls
`step`, and commits the returned state, timeline notes and pages in one transaction; so
the whole escalation matrix can be walked minute by minute in tests with plain values.

Rules (the README repeats them for users):
- Step i falls due at `clock_base + steps[i].after`; `clock_base` is when the alert opened.
  When it falls due its condition is checked once: `unacknowledged` holds only while the
  alert is triggered, `unresolved` while it is triggered or acknowledged. A step whose
  condition does not hold is skipped and recorded; it does not fire later.
- A step that reaches nobody (the roster resolves it to no one) is recorded and the next
  step fires at once, so an empty slot never means silence.
- After the last step, `repeat` pages the last step again every `every`, `times` times,
  while the repeat's condition (by default the last step's) holds. Repeats that fell due
  together (the engine was down) are one page, not a burst.
- An acknowledgement may carry an end (`ack_timeout`, or a snooze's `until`). When it ends
  the alert is triggered again: the level it had reached is paged again at once, and the
  later steps follow at their usual spacing from that moment. Acknowledging again while
  acknowledged renews the timeout.
- Resolve works from any state and cancels every page not yet sent; acknowledge cancels
  the pages of `unacknowledged` steps not yet sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from escalator.config import Policy, Step

Status = Literal["triggered", "acknowledged", "resolved"]


@dataclass(frozen=True)
class AlertState:
    opened_at: datetime
    clock_base: datetime
    status: Status = "triggered"
    next_step: int = 0
    level: int = -1
    repeats_done: int = 0
    acked_at: datetime | None = None
    acked_by: str | None = None
    ack_via: str | None = None
    ack_expires_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolved_via: str | None = None

    @classmethod
    def opened(cls, now: datetime) -> AlertState:
        return cls(opened_at=now, clock_base=now)


# Events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """Time has passed; fire whatever fell due."""


@dataclass(frozen=True)
class Ack:
    by: str
    via: str
    until: datetime | None = None


@dataclass(frozen=True)
class Resolve:
    by: str
    via: str


@dataclass(frozen=True)
class EscalateNow:
    by: str
    via: str


Event = Tick | Ack | Resolve | EscalateNow


# Effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """Notify the targets of `step` (level `level`); `repeat` > 0 for repeats of the last step.

    `conditional` pages are dropped unsent once the step's condition stops holding (an ack
    cancels an `unacknowledged` step's queued calls); a page a person asked for is not.
    """

    level: int
    step: Step
    repeat: int = 0
    reason: str = "escalation"
    conditional: bool = True
    # Why this page, in words, when the reason alone does not say it (whose ack ended).
    detail: str = ""


@dataclass(frozen=True)
class Note:
    """A timeline entry that is not itself a page."""

    kind: str
    detail: str
    actor: str | None = None
    via: str | None = None
    level: int | None = None  # the level the note is about, when it is about one


@dataclass(frozen=True)
class CancelPages:
    """Drop unsent pages: of `unacknowledged` steps only, or `all`."""

    scope: Literal["unacknowledged", "all"]


Effect = Page | Note | CancelPages


@dataclass(frozen=True)
class Decision:
    state: AlertState
    effects: tuple[Effect, ...] = ()
    next_action_at: datetime | None = None
    changed: bool = True
    message: str = ""


class Roster(Protocol):
    """A roster snapshot: everything needed to say who a step reaches, already read.

    Data in, not a query: the shell reads the overrides once (`escalation.paging.Paging`)
    and the machine only asks the snapshot, so stepping stays pure and repeatable.
    """

    def reaches(self, step: Step, at: datetime) -> bool:
        """Does this step reach at least one person or channel at `at`?"""
        ...


_HOLDS: dict[str, frozenset[Status]] = {
    "unacknowledged": frozenset({"triggered"}),
    "unresolved": frozenset({"triggered", "acknowledged"}),
}


def condition_holds(condition: str, status: Status) -> bool:
    return status in _HOLDS[condition]


def next_action_at(state: AlertState, policy: Policy) -> datetime | None:
    """When the engine must next look at this alert; None once nothing more can happen."""
    if state.status == "resolved":
        return None
    due: list[datetime] = []
    if state.next_step < len(policy.steps):
        due.append(state.clock_base + policy.steps[state.next_step].after)
    elif _repeat_pending(state, policy):
        due.append(_repeat_due(state, policy))
    if state.status == "acknowledged" and state.ack_expires_at is not None:
        due.append(state.ack_expires_at)
    return min(due) if due else None


@dataclass(frozen=True)
class NextEscalation:
    """What will really page next, and when: a step, a repeat of the last step, or the
    end of an acknowledgement (which pages the level reached again)."""

    at: datetime
    level: int
    kind: Literal["step", "repeat", "ack_ends"]


def next_escalation(state: AlertState, policy: Policy) -> NextEscalation | None:
    """The next page the machine will send if nothing else happens; None if none will.

    Unlike `next_action_at` (when the engine must look), this walks the remaining steps
    as `_advance` will: a step whose condition will not hold in the alert's present state
    is skipped, not shown (after an ack, an `unacknowledged` step never fires). The CLI,
    the API's read models and the web console all ask this one function.
    """
    if state.status == "resolved":
        return None
    found: NextEscalation | None = None
    for index in range(state.next_step, len(policy.steps)):
        step = policy.steps[index]
        if condition_holds(step.condition, state.status):
            found = NextEscalation(state.clock_base + step.after, index, "step")
            break
    if found is None and state.next_step >= len(policy.steps) and policy.repeat is not None:
        last = len(policy.steps) - 1
        condition = policy.repeat.condition or policy.steps[last].condition
        if state.repeats_done < policy.repeat.times and condition_holds(condition, state.status):
            due = state.clock_base + policy.steps[last].after
            found = NextEscalation(
                due + policy.repeat.every * (state.repeats_done + 1), last, "repeat"
            )
    ends = state.ack_expires_at if state.status == "acknowledged" else None
    if ends is not None and (found is None or ends <= found.at):
        found = NextEscalation(ends, max(state.level, 0), "ack_ends")
    return found


def _repeat_pending(state: AlertState, policy: Policy) -> bool:
    last = len(policy.steps) - 1
    return (
        policy.repeat is not None
        and state.next_step > last
        and state.level == last
        and state.repeats_done < policy.repeat.times
    )


def _repeat_due(state: AlertState, policy: Policy) -> datetime:
    assert policy.repeat is not None
    last = policy.steps[-1]
    return state.clock_base + last.after + policy.repeat.every * (state.repeats_done + 1)


def _advance(
    state: AlertState, now: datetime, policy: Policy, roster: Roster | None
) -> tuple[AlertState, list[Effect]]:
    effects: list[Effect] = []
    forced = False
    while state.next_step < len(policy.steps):
        index = state.next_step
        step = policy.steps[index]
        if not forced and state.clock_base + step.after > now:
            break
        forced = False
        if not condition_holds(step.condition, state.status):
            effects.append(
                Note(
                    "step_skipped",
                    f"level {index} skipped: {step.condition} no longer holds "
                    f"(alert is {state.status})",
                    level=index,
                )
            )
            state = replace(state, next_step=index + 1)
            continue
        state = replace(state, next_step=index + 1, level=index)
        if roster is not None and not roster.reaches(step, now):
            following = (
                "the next level now" if index + 1 < len(policy.steps) else "no further level"
            )
            effects.append(
                Note(
                    "nobody_to_page",
                    f"level {index} reaches nobody; paging {following}",
                    level=index,
                )
            )
            forced = True
            continue
        effects.append(Page(level=index, step=step))
    missed = 0
    while _repeat_pending(state, policy) and _repeat_due(state, policy) <= now:
        state = replace(state, repeats_done=state.repeats_done + 1)
        missed += 1
    if missed:
        # Repeats missed while the engine was down are one page, not a burst of identical
        # pages to the same person in the same second.
        done = state.repeats_done
        assert policy.repeat is not None
        last = policy.steps[-1]
        if policy.repeat.condition is not None:
            last = last.model_copy(update={"condition": policy.repeat.condition})
        if missed > 1:
            effects.append(
                Note("repeats_missed", f"repeats {done - missed + 1}-{done} fell due together")
            )
        if condition_holds(last.condition, state.status):
            effects.append(
                Page(level=len(policy.steps) - 1, step=last, repeat=done, reason="repeat")
            )
        else:
            effects.append(
                Note(
                    "repeat_skipped",
                    f"repeat {done} skipped: alert is {state.status}",
                    level=len(policy.steps) - 1,
                )
            )
    return state, effects


def _decide(
    state: AlertState, effects: list[Effect], policy: Policy, message: str = ""
) -> Decision:
    return Decision(
        state=state,
        effects=tuple(effects),
        next_action_at=next_action_at(state, policy),
        changed=True,
        message=message,
    )


def _unchanged(state: AlertState, policy: Policy, message: str) -> Decision:
    return Decision(state, (), next_action_at(state, policy), changed=False, message=message)


def step(
    state: AlertState,
    event: Event,
    now: datetime,
    policy: Policy,
    roster: Roster | None = None,
) -> Decision:
    """Apply one event at `now`. Pure: the same inputs always give the same decision."""
    if isinstance(event, Tick):
        return _tick(state, now, policy, roster)
    if isinstance(event, Ack):
        return _ack(state, event, now, policy)
    if isinstance(event, Resolve):
        return _resolve(state, event, now, policy)
    return _escalate_now(state, event, now, policy)


def _tick(state: AlertState, now: datetime, policy: Policy, roster: Roster | None) -> Decision:
    if state.status == "resolved":
        return _unchanged(state, policy, "resolved")
    effects: list[Effect] = []
    if (
        state.status == "acknowledged"
        and state.ack_expires_at is not None
        and state.ack_expires_at <= now
    ):
        level = max(state.level, 0)
        effects.append(
            Note(
                "ack_expired",
                f"acknowledgement by {state.acked_by} ended; alert is triggered again",
            )
        )
        ended = _ack_ending(state, policy)
        state = replace(
            state,
            status="triggered",
            acked_at=None,
            acked_by=None,
            ack_via=None,
            ack_expires_at=None,
            clock_base=now - policy.steps[level].after,
            next_step=level + 1,
            level=level,
            repeats_done=0,
        )
        effects.append(
            Page(level=level, step=policy.steps[level], reason="ack expired", detail=ended)
        )
    state, more = _advance(state, now, policy, roster)
    effects.extend(more)
    if not effects:
        return _unchanged(state, policy, "nothing due")
    return _decide(state, effects, policy)


def _ack_ending(state: AlertState, policy: Policy) -> str:
    """What ended, for the page that follows: a snooze (an ack with a chosen end) or the
    policy's `ack_timeout`. The state keeps only the end, so an ack renewed under a
    timeout reads as neither and is named plainly."""
    assert state.ack_expires_at is not None
    until = f"{state.ack_expires_at:%H:%M} UTC"
    if policy.ack_timeout is None:
        return f"snooze by {state.acked_by} ended at {until}"
    if state.acked_at is not None and state.ack_expires_at == state.acked_at + policy.ack_timeout:
        return f"acknowledgement by {state.acked_by} timed out at {until}"
    return f"acknowledgement (or snooze) by {state.acked_by} ended at {until}"


def _ack(state: AlertState, event: Ack, now: datetime, policy: Policy) -> Decision:
    if state.status == "resolved":
        return _unchanged(state, policy, f"already resolved by {state.resolved_by}")
    if state.status == "acknowledged":
        if event.until is None and policy.ack_timeout is not None:
            # Acknowledging again renews the timeout, as in PagerDuty: "still on it".
            renewed = now + policy.ack_timeout
            if renewed == state.ack_expires_at:
                return _unchanged(state, policy, f"already acknowledged by {state.acked_by}")
            state = replace(state, ack_expires_at=renewed)
            detail = f"acknowledgement renewed by {event.by} until {renewed.isoformat()}"
            renewal = Note("ack_renewed", detail, event.by, event.via)
            return _decide(state, [renewal], policy, detail)
        if event.until is None or event.until == state.ack_expires_at:
            return _unchanged(state, policy, f"already acknowledged by {state.acked_by}")
        state = replace(state, ack_expires_at=event.until)
        note = Note("snoozed", f"acknowledged until {event.until.isoformat()}", event.by, event.via)
        return _decide(state, [note], policy, f"snoozed until {event.until.isoformat()}")
    until = event.until
    if until is None and policy.ack_timeout is not None:
        until = now + policy.ack_timeout
    state = replace(
        state,
        status="acknowledged",
        acked_at=now,
        acked_by=event.by,
        ack_via=event.via,
        ack_expires_at=until,
    )
    detail = f"acknowledged by {event.by} via {event.via}"
    if until is not None:
        detail += f" until {until.isoformat()}"
    effects: list[Effect] = [
        Note("acknowledged", detail, event.by, event.via),
        CancelPages("unacknowledged"),
    ]
    return _decide(state, effects, policy, detail)


def _resolve(state: AlertState, event: Resolve, now: datetime, policy: Policy) -> Decision:
    if state.status == "resolved":
        return _unchanged(state, policy, f"already resolved by {state.resolved_by}")
    state = replace(
        state, status="resolved", resolved_at=now, resolved_by=event.by, resolved_via=event.via
    )
    detail = f"resolved by {event.by} via {event.via}"
    effects: list[Effect] = [Note("resolved", detail, event.by, event.via), CancelPages("all")]
    return _decide(state, effects, policy, detail)


def _escalate_now(state: AlertState, event: EscalateNow, now: datetime, policy: Policy) -> Decision:
    if state.status == "resolved":
        return _unchanged(state, policy, f"already resolved by {state.resolved_by}")
    note = Note(
        "escalated_manually",
        f"escalation requested by {event.by} via {event.via}",
        event.by,
        event.via,
    )
    if state.next_step < len(policy.steps):
        index = state.next_step
        target = policy.steps[index]
        state = replace(
            state, level=index, next_step=index + 1, clock_base=now - target.after, repeats_done=0
        )
        page = Page(level=index, step=target, reason="escalated manually", conditional=False)
    else:
        index = len(policy.steps) - 1
        page = Page(
            level=index, step=policy.steps[index], reason="escalated manually", conditional=False
        )
    return _decide(state, [note, page], policy, f"escalated to level {index}")
