"""The pure state machine over the shipped CredLink policies, walked minute by minute.

Every scenario starts an alert at T0, applies its scripted events at their minute, then
ticks at every minute 0..120, and compares the full list of pages (minute, level, repeat)
against the matrix: no database, no clock, just `machine.step` with an explicit `now`.

Critical matrix (config/escalator.yaml): level 0 on-call at 0; level 1 engineering lead at
5 min if unacknowledged; level 2 DevOps at 15 min, 3 CTO at 30, 4 emergency at 45 while
unresolved; then the emergency contact again every 15 min, four times (60, 75, 90, 105).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from escalator.config import Config, Policy, Step
from escalator.escalation.machine import (
    Ack,
    AlertState,
    CancelPages,
    Decision,
    EscalateNow,
    Event,
    Note,
    Page,
    Resolve,
    Roster,
    Tick,
    next_action_at,
    step,
)
from tests.support.helpers import T0, at, shipped_config

CONFIG: Config = shipped_config()
CRITICAL: Policy = CONFIG.policies["critical"]
WARNING: Policy = CONFIG.policies["warning"]
INFO: Policy = CONFIG.policies["info"]

PageKey = tuple[int, int, int]  # (minute, level, repeat)

REPEATS: list[PageKey] = [(60, 4, 1), (75, 4, 2), (90, 4, 3), (105, 4, 4)]
NO_ACK: list[PageKey] = [(0, 0, 0), (5, 1, 0), (15, 2, 0), (30, 3, 0), (45, 4, 0), *REPEATS]
# Acked before 5 min: the engineering lead (unacknowledged) is skipped; the rest still fire
# because "still down after 15 minutes" escalates whether or not someone acknowledged.
# The repeats of the emergency contact run only while unacknowledged (repeat.condition).
ACKED_EARLY: list[PageKey] = [(0, 0, 0), (15, 2, 0), (30, 3, 0), (45, 4, 0)]
# Acked after the lead was paged: every level still fires ("still down"), no repeats.
ACKED_LATE: list[PageKey] = NO_ACK[:5]


def ack(by: str = "alice", until: datetime | None = None) -> Ack:
    return Ack(by=by, via="cli", until=until)


def resolve(by: str = "alertmanager") -> Resolve:
    return Resolve(by=by, via="alertmanager")


@dataclass
class Walk:
    """Everything that happened in one scenario, keyed by minute after T0."""

    state: AlertState
    pages: list[PageKey] = field(default_factory=list)
    reasons: list[tuple[int, int, str]] = field(default_factory=list)  # (minute, level, reason)
    notes: list[tuple[int, str]] = field(default_factory=list)
    cancels: list[tuple[int, str]] = field(default_factory=list)
    decisions: list[tuple[int, Event, Decision]] = field(default_factory=list)

    def note_kinds(self, kind: str) -> list[int]:
        return [minute for minute, k in self.notes if k == kind]


def walk(
    policy: Policy,
    events: dict[int, list[Event]] | None = None,
    ticks: Iterable[int] = range(0, 121),
    roster: Roster | None = None,
) -> Walk:
    """Apply scripted events (before the tick of the same minute) and ticks, in order.

    Also checks the contract the engine relies on: a Tick only changes an alert whose
    `next_action_at` has come (the engine never looks at the others), and after a Tick the
    next action is in the future (otherwise the engine would spin on the row).
    """
    events = events or {}
    tick_set = set(ticks)
    result = Walk(state=AlertState.opened(T0))
    for minute in sorted(tick_set | set(events)):
        now = at(minute)
        scheduled: list[Event] = [*events.get(minute, [])]
        if minute in tick_set:
            scheduled.append(Tick())
        for event in scheduled:
            due_before = next_action_at(result.state, policy)
            decision = step(result.state, event, now, policy, roster)
            if isinstance(event, Tick):
                if due_before is None or due_before > now:
                    assert not decision.changed, f"tick at {minute} changed a not-due alert"
                assert decision.next_action_at is None or decision.next_action_at > now
            assert decision.next_action_at == next_action_at(decision.state, policy)
            result.decisions.append((minute, event, decision))
            result.state = decision.state
            for effect in decision.effects:
                if isinstance(effect, Page):
                    result.pages.append((minute, effect.level, effect.repeat))
                    result.reasons.append((minute, effect.level, effect.reason))
                elif isinstance(effect, Note):
                    result.notes.append((minute, effect.kind))
                elif isinstance(effect, CancelPages):
                    result.cancels.append((minute, effect.scope))
    return result


# The matrix: ack and resolve at each stage ----------------------------------------------

MATRIX: list[tuple[str, dict[int, list[Event]], list[PageKey]]] = [
    ("no ack, no resolve", {}, NO_ACK),
    ("ack at 1 min", {1: [ack()]}, ACKED_EARLY),
    ("ack at 4 min", {4: [ack()]}, ACKED_EARLY),
    ("ack at 6 min", {6: [ack()]}, ACKED_LATE),
    ("ack at 16 min", {16: [ack()]}, ACKED_LATE),
    ("ack at 31 min", {31: [ack()]}, ACKED_LATE),
    ("ack at 46 min", {46: [ack()]}, ACKED_LATE),
    ("ack at 61 min, after the first repeat", {61: [ack()]}, NO_ACK[:6]),
    ("resolve at 1 min", {1: [resolve()]}, [(0, 0, 0)]),
    ("resolve at 4 min", {4: [resolve()]}, [(0, 0, 0)]),
    ("resolve at 6 min", {6: [resolve()]}, [(0, 0, 0), (5, 1, 0)]),
    ("resolve at 16 min", {16: [resolve()]}, NO_ACK[:3]),
    ("resolve at 31 min", {31: [resolve()]}, NO_ACK[:4]),
    ("resolve at 46 min", {46: [resolve()]}, NO_ACK[:5]),
    ("resolve at 61 min", {61: [resolve()]}, NO_ACK[:6]),
    ("resolve at 0 min, before the first tick", {0: [resolve()]}, []),
    ("ack at 1, resolve at 20", {1: [ack()], 20: [resolve()]}, [(0, 0, 0), (15, 2, 0)]),
    ("ack at 6, resolve at 35", {6: [ack()], 35: [resolve()]}, NO_ACK[:4]),
]


@pytest.mark.parametrize(
    ("events", "expected"),
    [pytest.param(events, expected, id=name) for name, events, expected in MATRIX],
)
def test_critical_matrix_minute_by_minute(
    events: dict[int, list[Event]], expected: list[PageKey]
) -> None:
    result = walk(CRITICAL, events)
    assert result.pages == expected
    if any(isinstance(e, Resolve) for evs in events.values() for e in evs):
        assert result.state.status == "resolved"
        assert result.state.resolved_by == "alertmanager"
        assert result.state.resolved_at is not None
    # Nothing at all is left to do at minute 120 in any scenario of the shipped matrix.
    assert next_action_at(result.state, CRITICAL) is None


@pytest.mark.parametrize("ack_minute", [1, 4])
def test_ack_before_five_minutes_skips_the_lead_and_records_why(ack_minute: int) -> None:
    result = walk(CRITICAL, {ack_minute: [ack("bob")]})
    assert result.note_kinds("step_skipped") == [5]
    assert result.note_kinds("acknowledged") == [ack_minute]
    assert result.cancels == [(ack_minute, "unacknowledged")]
    assert result.state.status == "acknowledged"
    assert result.state.acked_by == "bob"
    assert result.state.acked_at == at(ack_minute)
    assert result.state.ack_expires_at is None  # the shipped policy has no ack timeout


def test_still_down_at_15_minutes_escalates_an_acknowledged_alert_to_devops() -> None:
    result = walk(CRITICAL, {2: [ack()]}, ticks=range(0, 16))
    assert result.state.status == "acknowledged"
    assert result.pages == [(0, 0, 0), (15, 2, 0)]
    minute, _, decision = result.decisions[-1]
    assert minute == 15
    devops = [e for e in decision.effects if isinstance(e, Page)]
    assert [t.role for t in devops[0].step.targets] == ["devops"]
    assert devops[0].step.condition == "unresolved"
    # The alert stays acknowledged by alice: DevOps is added, the ack is not undone.
    assert decision.state.acked_by == "alice"
    assert decision.next_action_at == at(30)


def test_levels_page_the_roles_of_the_matrix() -> None:
    """Which targets each level names, so the table above means what it says."""
    result = walk(CRITICAL)
    targets: dict[int, list[str]] = {}
    for _, _, decision in result.decisions:
        for effect in decision.effects:
            if isinstance(effect, Page) and effect.level not in targets:
                targets[effect.level] = [f"{t.kind}:{t.ref}" for t in effect.step.targets]
    assert targets == {
        0: ["rotation:primary", "channel:incidents"],
        1: ["role:engineering_lead"],
        2: ["role:devops"],
        3: ["role:cto"],
        4: ["role:emergency"],
    }


def test_repeat_counts_and_stops() -> None:
    result = walk(CRITICAL, ticks=range(0, 241))
    repeats = [(m, level, r) for m, level, r in result.pages if r]
    assert repeats == REPEATS
    assert result.state.repeats_done == 4
    assert result.state.level == 4
    assert [reason for m, _, reason in result.reasons if m >= 60] == ["repeat"] * 4
    assert next_action_at(result.state, CRITICAL) is None
    assert result.state.status == "triggered"  # still open: only paging stops


def test_repeat_stops_once_resolved_between_repeats() -> None:
    result = walk(CRITICAL, {80: [resolve()]})
    assert result.pages == [*NO_ACK[:5], (60, 4, 1), (75, 4, 2)]


def test_repeats_of_an_unacknowledged_last_step_skip_once_acknowledged() -> None:
    """A policy whose last step needs `unacknowledged`: an ack silences its repeats."""
    policy = Policy(
        steps=[Step(after=timedelta(0), targets=CRITICAL.steps[0].targets)],
        repeat={"every": timedelta(minutes=10), "times": 3},  # type: ignore[arg-type]
    )
    result = walk(policy, {12: [ack()]}, ticks=range(0, 61))
    assert result.pages == [(0, 0, 0), (10, 0, 1)]
    assert result.note_kinds("repeat_skipped") == [20, 30]
    assert next_action_at(result.state, policy) is None


# Ack timeout and snooze ------------------------------------------------------------------

TIMED = CRITICAL.model_copy(update={"ack_timeout": timedelta(minutes=10)})


def test_ack_timeout_returns_to_triggered_and_repages_the_current_level() -> None:
    """Ack at 2 ends at 12: level 0 pages again at 12 and the later steps follow at their
    usual spacing from then (lead +5 = 17, DevOps +15 = 27, CTO 42, emergency 57)."""
    result = walk(TIMED, {2: [ack()]})
    assert result.pages == [
        (0, 0, 0),
        (12, 0, 0),
        (17, 1, 0),
        (27, 2, 0),
        (42, 3, 0),
        (57, 4, 0),
        (72, 4, 1),
        (87, 4, 2),
        (102, 4, 3),
        (117, 4, 4),
    ]
    assert result.note_kinds("step_skipped") == [5]
    assert result.note_kinds("ack_expired") == [12]
    assert (12, 0, "ack expired") in result.reasons
    assert result.state.status == "triggered"
    assert result.state.acked_by is None


def test_ack_timeout_after_devops_repages_devops() -> None:
    """Ack at 6 (after the lead) ends at 16; DevOps was paged at 15 and is paged again."""
    result = walk(TIMED, {6: [ack()]})
    assert result.pages[:5] == [(0, 0, 0), (5, 1, 0), (15, 2, 0), (16, 2, 0), (31, 3, 0)]
    assert result.pages[5:] == [(46, 4, 0), (61, 4, 1), (76, 4, 2), (91, 4, 3), (106, 4, 4)]


def test_ack_timeout_is_set_from_policy_and_reack_renews_it() -> None:
    result = walk(TIMED, {2: [ack()], 13: [ack("bob")]}, ticks=range(0, 30))
    acks = [(m, d) for m, e, d in result.decisions if isinstance(e, Ack)]
    assert acks[0][1].state.ack_expires_at == at(12)
    assert acks[0][1].next_action_at == at(5)  # the lead's step is still looked at
    assert acks[1][0] == 13 and acks[1][1].changed
    assert acks[1][1].state.ack_expires_at == at(23)
    assert result.note_kinds("ack_expired") == [12, 23]
    # While acked the lead (unacknowledged) is skipped, at 5 and at 17 (12 + 5); after
    # bob's ack runs out at 23 nobody answered, so the lead is paged 5 minutes later.
    assert result.pages == [(0, 0, 0), (12, 0, 0), (23, 0, 0), (28, 1, 0)]
    assert result.note_kinds("step_skipped") == [5, 17]


def test_acknowledging_again_while_acknowledged_renews_the_timeout() -> None:
    result = walk(TIMED, {2: [ack()], 8: [ack("alice")]}, ticks=range(0, 20))
    renewed = next(d for m, e, d in result.decisions if isinstance(e, Ack) and m == 8)
    assert renewed.changed
    assert renewed.state.ack_expires_at == at(18)
    assert result.note_kinds("ack_renewed") == [8]
    assert result.note_kinds("ack_expired") == [18]
    # DevOps at 15 ("still down"), then the expired ack re-pages that level at 18.
    assert result.pages == [(0, 0, 0), (15, 2, 0), (18, 2, 0)]


def test_snooze_is_an_ack_with_an_end() -> None:
    """Snooze at 6 until 26 on the shipped policy: DevOps at 15 (unresolved), then at 26
    the alert triggers again, DevOps is paged again, CTO follows 15 min later."""
    result = walk(CRITICAL, {6: [ack(until=at(26))]})
    assert result.pages == [
        (0, 0, 0),
        (5, 1, 0),
        (15, 2, 0),
        (26, 2, 0),
        (41, 3, 0),
        (56, 4, 0),
        (71, 4, 1),
        (86, 4, 2),
        (101, 4, 3),
        (116, 4, 4),
    ]
    assert result.note_kinds("ack_expired") == [26]


def test_snooze_extends_an_existing_ack() -> None:
    state = step(AlertState.opened(T0), ack(), at(1), CRITICAL).state
    longer = step(state, ack("bob", until=at(40)), at(2), CRITICAL)
    assert longer.changed
    assert longer.state.ack_expires_at == at(40)
    assert longer.state.acked_by == "alice"  # who acknowledged first stays recorded
    assert [e.kind for e in longer.effects if isinstance(e, Note)] == ["snoozed"]
    same = step(longer.state, ack("bob", until=at(40)), at(3), CRITICAL)
    assert not same.changed


# Idempotence ------------------------------------------------------------------------------


def test_ack_twice_changes_once() -> None:
    first = step(AlertState.opened(T0), ack("alice"), at(1), CRITICAL)
    second = step(first.state, ack("bob"), at(2), CRITICAL)
    assert first.changed and not second.changed
    assert second.effects == ()
    assert second.state == first.state
    assert "alice" in second.message


def test_resolve_twice_changes_once_and_ack_after_resolve_changes_nothing() -> None:
    first = step(AlertState.opened(T0), resolve("alice"), at(1), CRITICAL)
    assert first.changed
    assert CancelPages("all") in first.effects
    assert first.next_action_at is None
    for event in (resolve("bob"), ack("bob"), EscalateNow("bob", "cli"), Tick()):
        again = step(first.state, event, at(2), CRITICAL)
        assert not again.changed, event
        assert again.effects == ()
        assert again.state.resolved_by == "alice"


def test_resolve_from_acknowledged_cancels_everything() -> None:
    acked = step(AlertState.opened(T0), ack(), at(1), CRITICAL)
    assert acked.effects[-1] == CancelPages("unacknowledged")
    done = step(acked.state, Resolve("alice", "cli"), at(3), CRITICAL)
    assert done.state.status == "resolved"
    assert done.state.acked_by == "alice"  # the ack stays on record
    assert CancelPages("all") in done.effects
    assert done.next_action_at is None


def test_step_is_pure() -> None:
    state = AlertState.opened(T0)
    one = step(state, Tick(), at(20), CRITICAL)
    two = step(state, Tick(), at(20), CRITICAL)
    assert one == two
    assert state == AlertState.opened(T0)


# Escalate now -----------------------------------------------------------------------------


def test_escalate_now_pages_the_next_level_and_shifts_the_rest() -> None:
    result = walk(CRITICAL, {2: [EscalateNow("alice", "voice")]})
    assert result.pages == [
        (0, 0, 0),
        (2, 1, 0),
        (12, 2, 0),
        (27, 3, 0),
        (42, 4, 0),
        (57, 4, 1),
        (72, 4, 2),
        (87, 4, 3),
        (102, 4, 4),
    ]
    assert (2, 1, "escalated manually") in result.reasons
    manual = [e for m, _, d in result.decisions if m == 2 for e in d.effects if isinstance(e, Page)]
    assert [p.conditional for p in manual] == [False]  # an ack must not swallow it
    assert result.note_kinds("escalated_manually") == [2]


def test_escalate_now_on_an_acknowledged_alert_keeps_it_acknowledged() -> None:
    result = walk(CRITICAL, {6: [ack()], 8: [EscalateNow("alice", "cli")]}, ticks=range(0, 40))
    assert result.pages == [(0, 0, 0), (5, 1, 0), (8, 2, 0), (23, 3, 0), (38, 4, 0)]
    assert result.state.status == "acknowledged"


def test_escalate_now_after_the_last_level_pages_it_again() -> None:
    state = walk(CRITICAL, ticks=range(0, 50)).state
    decision = step(state, EscalateNow("erin", "cli"), at(50), CRITICAL)
    pages = [e for e in decision.effects if isinstance(e, Page)]
    assert [(p.level, p.reason) for p in pages] == [(4, "escalated manually")]
    assert decision.next_action_at == at(60)  # the repeat schedule is unchanged


# Nobody reachable ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Roster:
    """A roster snapshot (data) for the pure machine: the steps that reach nobody."""

    nobody: Callable[[Step], bool]

    def reaches(self, s: Step, _at: datetime) -> bool:
        return not self.nobody(s)


def _unreachable(*roles: str) -> Roster:
    """A roster under which steps naming any of `roles` reach nobody."""
    return _Roster(lambda s: any(t.role in roles for t in s.targets))


def test_a_level_that_reaches_nobody_fires_the_next_level_at_once() -> None:
    result = walk(CRITICAL, roster=_unreachable("engineering_lead"))
    assert result.pages == [(0, 0, 0), (5, 2, 0), (30, 3, 0), (45, 4, 0), *REPEATS]
    assert result.note_kinds("nobody_to_page") == [5]


def test_nobody_on_call_at_level_zero_pages_the_lead_immediately() -> None:
    nobody_primary = _Roster(lambda s: any(t.rotation == "primary" for t in s.targets))
    result = walk(CRITICAL, roster=nobody_primary, ticks=range(0, 16))
    assert result.pages == [(0, 1, 0), (15, 2, 0)]
    assert result.note_kinds("nobody_to_page") == [0]


def test_unreachable_last_level_is_recorded_not_silent() -> None:
    result = walk(CRITICAL, roster=_unreachable("emergency"), ticks=range(0, 50))
    assert (45, 4, 0) not in result.pages
    assert result.note_kinds("nobody_to_page") == [45]
    detail = [
        e.detail
        for m, _, d in result.decisions
        for e in d.effects
        if isinstance(e, Note) and m == 45
    ]
    assert detail == ["level 4 reaches nobody; paging no further level"]


# Catch-up after downtime --------------------------------------------------------------------


def test_catch_up_after_downtime_fires_missed_levels_at_once() -> None:
    result = walk(CRITICAL, ticks=[0, 20, 21])
    assert result.pages == [(0, 0, 0), (20, 1, 0), (20, 2, 0)]
    assert result.state.level == 2
    assert next_action_at(result.state, CRITICAL) == at(30)


def test_catch_up_after_downtime_skips_the_lead_when_acknowledged() -> None:
    result = walk(CRITICAL, {3: [ack()]}, ticks=[0, 20])
    assert result.pages == [(0, 0, 0), (20, 2, 0)]
    assert result.note_kinds("step_skipped") == [20]


def test_catch_up_from_nothing_fires_every_level_in_order() -> None:
    result = walk(CRITICAL, ticks=[50])
    assert result.pages == [(50, 0, 0), (50, 1, 0), (50, 2, 0), (50, 3, 0), (50, 4, 0)]


def test_catch_up_of_missed_repeats_is_one_page_not_a_burst() -> None:
    """Down from minute 46 to 100: repeats 1-3 all fell due; the emergency contact gets
    one page (repeat 3), not three identical ones at the same second."""
    result = walk(CRITICAL, ticks=[*range(0, 47), *range(100, 121)])
    assert result.pages == [*NO_ACK[:5], (100, 4, 3), (105, 4, 4)]
    assert result.note_kinds("repeats_missed") == [100]


def test_ticking_only_when_due_equals_ticking_every_minute() -> None:
    """The engine ticks a row only at `next_action_at`; that must give the same pages."""
    for policy, events in ((CRITICAL, {}), (TIMED, {2: [ack()]}), (CRITICAL, {6: [ack()]})):
        state = AlertState.opened(T0)
        pages: list[PageKey] = []
        pending = sorted(events)
        due: datetime | None = T0
        while due is not None and due <= at(120):
            while pending and at(pending[0]) <= due:
                minute = pending.pop(0)
                for event in events[minute]:
                    state = step(state, event, at(minute), policy).state
            decision = step(state, Tick(), due, policy)
            minute = int((due - T0).total_seconds() // 60)
            pages += [(minute, e.level, e.repeat) for e in decision.effects if isinstance(e, Page)]
            state, due = decision.state, decision.next_action_at
        assert pages == walk(policy, events).pages


# Warning and info ------------------------------------------------------------------------------


def test_warning_notifies_at_once_and_pages_at_30_minutes_when_unacknowledged() -> None:
    result = walk(WARNING)
    assert result.pages == [(0, 0, 0), (30, 1, 0)]
    levels = [
        (e.level, e.step.urgency)
        for _, _, d in result.decisions
        for e in d.effects
        if isinstance(e, Page)
    ]
    assert levels == [(0, "notify"), (1, "page")]
    assert next_action_at(result.state, WARNING) is None


@pytest.mark.parametrize("ack_minute", [1, 29])
def test_warning_acknowledged_in_time_never_pages(ack_minute: int) -> None:
    result = walk(WARNING, {ack_minute: [ack()]})
    assert result.pages == [(0, 0, 0)]
    assert result.note_kinds("step_skipped") == [30]


def test_info_notifies_once_and_never_escalates() -> None:
    result = walk(INFO)
    assert result.pages == [(0, 0, 0)]
    first = result.decisions[0][2]
    assert [e.step.urgency for e in first.effects if isinstance(e, Page)] == ["notify"]
    assert first.next_action_at is None
    assert [m for m, e, d in result.decisions if d.changed] == [0]


def test_opened_alert_is_due_at_once() -> None:
    state = AlertState.opened(T0)
    assert state.status == "triggered" and state.level == -1
    assert next_action_at(state, CRITICAL) == T0
