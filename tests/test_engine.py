"""The engine and the sender on a real store (SQLite file and PostgreSQL), time moved by hand.

Each test builds the daemon the way `escalator serve` does (build_daemon), swaps the clock
for a FixedClock and the channels for a recorder, and drives `engine.tick()` and
`sender.drain()` directly; the APScheduler runner is never started, so nothing here
depends on wall-clock timing.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from escalator.config import Config
from escalator.escalation.machine import Ack, EscalateNow, Resolve
from escalator.notify.channels.base import Delivery, SendResult
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow, PolicyRow, TimelineRow
from tests.support.helpers import (
    T0,
    alert_rows,
    am_alert,
    at,
    count_rows,
    outbox_rows,
    shipped_config,
    timeline,
)
from tests.support.rig import Recorder, Rig

CONFIG = shipped_config()

# Who each level of the shipped critical policy reaches (console only: one row each).
LEVEL_0 = [(0, "alice"), (0, "incidents")]
LEVEL_1 = [(1, "erin")]
LEVEL_2 = [(2, "dana"), (2, "dave")]
LEVEL_3 = [(3, "carla")]
LEVEL_4 = [(4, "emergency")]
FULL_WALK = {0: LEVEL_0, 5: LEVEL_1, 15: LEVEL_2, 30: LEVEL_3, 45: LEVEL_4, 60: LEVEL_4}


def test_ingest_pages_level_zero_and_the_clock_walks_the_levels(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        result = rig.fire(am_alert())
        assert len(result.opened) == 1
        alert_id = result.opened[0]
        assert rig.walk(60) == FULL_WALK
        # What the console page says: who, which alert, how to acknowledge.
        first, message = next((d, m) for d, m in rig.rec.sent if d.level is not None)
        assert first.alert_id == alert_id
        assert message.title.startswith(f"[CRITICAL] #{alert_id} CredLinkAPIDown")
        assert message.ack_hint == f"acknowledge: escalator ack {alert_id}"
        assert "Runbook: https://runbooks.credlink.example/api-down" in message.body
        (row,) = alert_rows(rig.factory)
        assert (row.status, row.level, row.repeats_done) == ("triggered", 4, 1)
        assert row.next_action_at == at(75)
        statuses = Counter(r.status for r in outbox_rows(rig.factory))
        assert statuses == Counter({"sent": 8})
    finally:
        rig.close()


def test_ack_cancels_pending_unacknowledged_pages(database_url: str) -> None:
    """With SMS now and voice a minute later, an ack at 0:30 cancels alice's call; the
    DevOps step (unresolved) still pages at 15, and resolve cancels its pending calls."""
    rig = Rig(database_url, methods=("console", "sms", "voice", "email"))
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        sent = rig.step()
        assert sorted((d.recipient, d.method) for d in sent) == [
            ("alice", "email"),
            ("alice", "sms"),
            ("incidents", "console"),
        ]
        rig.clock.advance(seconds=30)
        (outcome,) = rig.act([alert_id], Ack(by="alice", via="cli"))
        assert (outcome.changed, outcome.status) == (True, "acknowledged")
        voice = [r for r in outbox_rows(rig.factory, alert_id) if r.method == "voice"]
        assert [(r.recipient, r.status) for r in voice] == [("alice", "cancelled")]
        assert voice[0].last_error == "cancelled: alert acknowledged"
        rig.clock.current = at(1)
        assert rig.walk(15) == {
            15: [(2, "dana"), (2, "dana"), (2, "dave"), (2, "dave")]  # sms + email each
        }
        rig.clock.advance(seconds=30)
        rig.act([alert_id], Resolve(by="dave", via="cli"))
        rig.clock.current = at(16)
        assert rig.walk(60) == {}  # the 16-minute calls to DevOps never go out
        rows = outbox_rows(rig.factory, alert_id)
        assert Counter((r.method, r.status) for r in rows) == Counter(
            {
                ("sms", "sent"): 3,
                ("email", "sent"): 3,
                ("console", "sent"): 1,
                ("voice", "cancelled"): 3,
            }
        )
    finally:
        rig.close()


def test_resolve_cancels_everything_not_yet_sent(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        rig.daemon.engine.tick()  # level 0 queued, not yet sent
        rig.act([alert_id], Resolve(by="alice", via="cli"))
        assert rig.walk(60) == {}
        assert {r.status for r in outbox_rows(rig.factory)} == {"cancelled"}
        (row,) = alert_rows(rig.factory)
        assert (row.status, row.resolved_by, row.next_action_at) == ("resolved", "alice", None)
    finally:
        rig.close()


def test_timeline_records_every_transition_page_ack_and_resolve(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        rig.walk(6)
        rig.act([alert_id], Ack(by="bob", via="cli"))
        rig.act([alert_id], Ack(by="alice", via="cli"))  # idempotent: no second entry
        rig.clock.advance(minutes=1)
        resolved = rig.fire(am_alert(status="resolved", ends_at="2026-03-02T19:07:02.5Z"))
        assert resolved.resolved == [alert_id]
        entries = [(t.kind, t.actor, t.channel, t.level) for t in timeline(rig.factory, alert_id)]
        assert entries == [
            ("opened", "alertmanager", "alertmanager", None),
            ("paged", None, None, 0),
            ("sent", "alice", "console", 0),
            ("sent", "incidents", "console", 0),
            ("paged", None, None, 1),
            ("sent", "erin", "console", 1),
            ("acknowledged", "bob", "cli", None),
            ("resolved", "alertmanager", "alertmanager", None),
        ]
        times = [t.at for t in timeline(rig.factory, alert_id)]
        assert times[:4] == [T0] * 4
        assert times[4:] == [at(5), at(5), at(6), at(7)]
        (row,) = alert_rows(rig.factory)
        assert row.ends_at is not None and row.ends_at.microsecond == 500000
        assert (row.acked_by, row.ack_via, row.resolved_via) == ("bob", "cli", "alertmanager")
    finally:
        rig.close()


def test_unknown_alert_ids_are_reported_not_raised(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        outcomes = rig.act([alert_id, 999999], Ack(by="alice", via="cli"))
        assert [(o.alert_id, o.changed, o.status) for o in outcomes] == [
            (alert_id, True, "acknowledged"),
            (999999, False, "unknown"),
        ]
    finally:
        rig.close()


def test_expired_lease_is_sent_again_exactly_once(database_url: str) -> None:
    """A sender that leased rows and died leaves them `sending`; after the lease they are
    sent once by another sender, and not again."""
    dead = Rig(database_url)
    rig: Rig | None = None
    try:
        (alert_id,) = dead.fire(am_alert()).opened
        lease_end = T0 + timedelta(seconds=30)
        with transaction(dead.factory) as session:  # exactly what a claim commits
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.status == "pending")
                .values(
                    status="sending", lease_until=lease_end, leased_by="dead-host:4242", attempts=1
                )
            )
        dead.close()
        rows = outbox_rows(dead.factory, alert_id)
        assert len(rows) == 2

        rig = Rig(database_url, start=lease_end - timedelta(seconds=1))
        assert rig.step() == []  # lease still held: nobody else sends
        rig.clock.advance(seconds=1)
        resent = rig.step()
        assert sorted(d.recipient for d in resent) == ["alice", "incidents"]
        assert {d.attempts for d in resent} == {2}
        rig.clock.advance(minutes=2)
        assert rig.step() == []
        rows = outbox_rows(rig.factory)
        assert {(r.status, r.attempts, r.leased_by) for r in rows} == {
            ("sent", 2, rows[0].leased_by)
        }
        assert rows[0].leased_by != "dead-host:4242"
        assert len(rig.rec.pages()) == 2
    finally:
        dead.close()
        if rig is not None:
            rig.close()


def _with_engine(config: Config, **settings: object) -> Config:
    return config.model_copy(update={"engine": config.engine.model_copy(update=settings)})


def test_failing_channel_is_retried_with_backoff_then_fails(database_url: str) -> None:
    config = _with_engine(CONFIG, send_max_attempts=3, send_retry_base=timedelta(seconds=2))
    flaky = Recorder(outcomes=[SendResult("retry", "provider said 503")] * 100)
    rig = Rig(database_url, config=config, recorder=flaky)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        assert len(rig.step()) == 2  # attempt 1 of both level-0 rows
        rows = outbox_rows(rig.factory, alert_id)
        assert {(r.status, r.attempts, r.due_at) for r in rows} == {
            ("pending", 1, T0 + timedelta(seconds=2))
        }
        rig.clock.advance(seconds=1)
        assert rig.step() == []  # backing off
        rig.clock.advance(seconds=1)
        assert len(rig.step()) == 2  # attempt 2, next in 4 s
        rows = outbox_rows(rig.factory, alert_id)
        assert {r.due_at for r in rows} == {T0 + timedelta(seconds=6)}
        rig.clock.advance(seconds=3)
        assert rig.step() == []
        rig.clock.advance(seconds=1)
        assert len(rig.step()) == 2  # attempt 3 = send_max_attempts: give up
        rig.clock.advance(minutes=4)  # the lead's page (minute 5) is not due yet
        assert rig.step() == []
        rows = outbox_rows(rig.factory, alert_id)
        assert {(r.status, r.attempts, r.last_error) for r in rows} == {
            ("failed", 3, "provider said 503")
        }
        kinds = [(t.kind, t.actor) for t in timeline(rig.factory, alert_id) if t.kind != "paged"]
        assert Counter(kinds) == Counter(
            {
                ("opened", "alertmanager"): 1,
                ("send_retry", "alice"): 2,
                ("send_retry", "incidents"): 2,
                ("send_failed", "alice"): 1,
                ("send_failed", "incidents"): 1,
            }
        )
        assert len(flaky.pages()) == 6
    finally:
        rig.close()


def test_channel_that_raises_is_retried_not_fatal(database_url: str) -> None:
    class Exploding:
        """Raises on every first attempt, as a provider SDK does on a reset connection."""

        method = "console"

        def __init__(self) -> None:
            self.attempts: list[tuple[int, int]] = []

        def send(self, delivery: Delivery, message: object) -> SendResult:
            self.attempts.append((delivery.id, delivery.attempts))
            if delivery.attempts == 1:
                raise ConnectionResetError("provider hung up")
            return SendResult("sent")

    rig = Rig(database_url)
    channel = Exploding()
    rig.daemon.sender._channels["console"] = channel  # type: ignore[assignment]
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        rig.step()
        rows = outbox_rows(rig.factory, alert_id)
        assert {(r.status, r.last_error) for r in rows} == {
            ("pending", "ConnectionResetError: provider hung up")
        }
        rig.clock.advance(seconds=2)
        rig.step()
        rows = outbox_rows(rig.factory, alert_id)
        assert {(r.status, r.attempts) for r in rows} == {("sent", 2)}
        tried = Counter(
            attempt for row_id, attempt in channel.attempts if row_id in {r.id for r in rows}
        )
        assert tried == Counter({1: 2, 2: 2})
    finally:
        rig.close()


def _levels_paged(factory: object) -> Counter[tuple[int, int]]:
    """How many times each (alert, level) was paged, from the timeline's `paged` entries."""
    with transaction(factory) as session:  # type: ignore[arg-type]
        rows = session.execute(
            select(TimelineRow.alert_id, TimelineRow.level).where(TimelineRow.kind == "paged")
        ).all()
    return Counter((a, lvl) for a, lvl in rows)


def test_restart_mid_escalation_neither_misses_nor_repeats_a_level(database_url: str) -> None:
    first = Rig(database_url)
    second: Rig | None = None
    try:
        (alert_id,) = first.fire(am_alert()).opened
        before = first.walk(7)
        assert before == {0: LEVEL_0, 5: LEVEL_1}
        first.close()  # the process goes away; only the database remains

        second = Rig(database_url, start=at(8))
        after = second.walk(60)
        assert after == {15: LEVEL_2, 30: LEVEL_3, 45: LEVEL_4, 60: LEVEL_4}
        levels = Counter(d.level for d in first.rec.pages() + second.rec.pages())
        assert levels == Counter({0: 2, 1: 1, 2: 2, 3: 1, 4: 2})
        expected = {(alert_id, 0): 1, (alert_id, 1): 1, (alert_id, 2): 1, (alert_id, 3): 1}
        assert _levels_paged(second.factory) == Counter({**expected, (alert_id, 4): 2})
    finally:
        first.close()
        if second is not None:
            second.close()


def test_restart_between_tick_and_send_and_after_downtime(database_url: str) -> None:
    """Crash after the tick committed level 1 but before sending it; come back at 20 min:
    level 1 is sent once, level 2 (due at 15) fires once on the catch-up tick."""
    first = Rig(database_url)
    second: Rig | None = None
    try:
        first.fire(am_alert())
        first.walk(4)
        first.clock.advance(minutes=1)
        first.daemon.engine.tick()  # level 1 queued in the outbox, never sent
        first.close()

        second = Rig(database_url, start=at(20))
        assert second.walk(40) == {20: sorted(LEVEL_1 + LEVEL_2), 30: LEVEL_3}
        assert sorted(d.level for d in first.rec.pages()) == [0, 0]
    finally:
        first.close()
        if second is not None:
            second.close()


def test_policy_snapshot_survives_a_config_change(database_url: str) -> None:
    old = Rig(database_url)
    new: Rig | None = None
    try:
        (old_id,) = old.fire(am_alert()).opened
        old.walk(1)
        old.close()

        # The operator shortens the lead's step to 2 minutes and pages the CTO there instead.
        critical = CONFIG.policies["critical"]
        steps = list(critical.steps)
        steps[1] = steps[1].model_copy(
            update={"after": timedelta(minutes=2), "targets": steps[3].targets}
        )
        edited = CONFIG.model_copy(
            update={
                "policies": {
                    **CONFIG.policies,
                    "critical": critical.model_copy(update={"steps": steps}),
                }
            }
        )
        new = Rig(database_url, config=edited, start=at(1))
        (new_id,) = new.fire(am_alert(fingerprint="0a1b2c3d4e5f6789")).opened
        sent = new.walk(6)
        assert sorted((d.alert_id, d.level, d.recipient) for d in new.rec.pages()) == [
            (old_id, 1, "erin"),  # the old alert keeps its 5-minute lead step
            (new_id, 0, "alice"),
            (new_id, 0, "incidents"),
            (new_id, 1, "carla"),  # the new one follows the edited policy
        ]
        assert sent == {1: LEVEL_0, 3: [(1, "carla")], 5: LEVEL_1}
        with transaction(new.factory) as session:
            assert session.scalar(select(PolicyRow.name).distinct()) == "critical"
            assert len(list(session.scalars(select(PolicyRow.id)))) == 2
            pids = dict(session.execute(select(AlertRow.id, AlertRow.policy_id)).all())
        assert pids[old_id] != pids[new_id]
    finally:
        old.close()
        if new is not None:
            new.close()


def test_two_engines_tick_concurrently_and_page_each_level_once(database_url: str) -> None:
    """Two replicas on one database, ticking at the same instants from two threads."""
    a = Rig(database_url)
    b = Rig(database_url, clock=a.clock)
    try:
        fingerprints = [f"{n:016x}" for n in range(1, 31)]
        opened = a.fire(*(am_alert(fingerprint=f, instance=f"api-{f}") for f in fingerprints))
        assert len(opened.opened) == 30
        for minute in range(0, 61):
            a.clock.current = at(minute)
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def replica(
                rig: Rig,
                barrier: threading.Barrier = barrier,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    barrier.wait(timeout=30)  # both start the tick at the same moment
                    rig.daemon.engine.tick()
                    rig.daemon.sender.drain()
                except BaseException as exc:  # surfaced below, in the test thread
                    errors.append(exc)

            threads = [threading.Thread(target=replica, args=(r,)) for r in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors
        # Levels 0-3 once each, level 4 at 45 and its first repeat at 60: per alert.
        expected = {(i, lvl): 2 if lvl == 4 else 1 for i in opened.opened for lvl in range(5)}
        assert _levels_paged(a.factory) == Counter(expected)
        pages = Counter(d.id for d in a.rec.pages() + b.rec.pages())
        assert len(pages) == len(outbox_rows(a.factory)) == 30 * 8
        # Every outbox row (pages and any other notice) was sent exactly once.
        sent = Counter(d.id for d, _ in a.rec.sent + b.rec.sent)
        assert len(sent) == count_rows(a.factory, OutboxRow)
        assert set(sent.values()) == {1}
        assert {r.status for r in outbox_rows(a.factory, pages_only=False)} == {"sent"}
    finally:
        a.close()
        b.close()


def test_escalate_now_on_an_acknowledged_alert_is_delivered(database_url: str) -> None:
    """A person who acked and asks for help (voice: press 9) gets the next level paged,
    even when that level's condition is `unacknowledged`."""
    rig = Rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        rig.walk(1)
        rig.act([alert_id], Ack(by="alice", via="cli"))
        rig.clock.advance(minutes=1)
        rig.act([alert_id], EscalateNow(by="alice", via="voice"))
        assert [(d.level, d.recipient) for d in rig.step()] == [(1, "erin")]
        (row,) = alert_rows(rig.factory)
        assert (row.status, row.level) == ("acknowledged", 1)
    finally:
        rig.close()


def test_tick_claims_only_due_rows(database_url: str) -> None:
    rig = Rig(database_url)

    def paged() -> int:
        return sum(1 for t in timeline(rig.factory, alert_id) if t.kind == "paged")

    try:
        (alert_id,) = rig.fire(am_alert()).opened
        # Level 0 is decided inside the webhook's transaction: queued before any tick.
        assert [r.level for r in outbox_rows(rig.factory, alert_id)] == [0, 0]
        assert paged() == 1
        rig.daemon.engine.tick()
        rig.clock.advance(minutes=4, seconds=59)
        rig.daemon.engine.tick()
        assert paged() == 1  # the lead's step falls due at 5:00, not a second earlier
        (row,) = alert_rows(rig.factory)
        assert (row.level, row.next_action_at) == (0, at(5))
        rig.clock.advance(seconds=1)
        rig.daemon.engine.tick()
        assert paged() == 2
        (row,) = alert_rows(rig.factory)
        assert (row.level, row.next_action_at) == (1, at(15))
        # A row with nothing left to do (next_action_at NULL) is never claimed again.
        with transaction(rig.factory) as session:
            session.execute(update(AlertRow).values(next_action_at=None))
        rig.clock.advance(hours=1)
        rig.daemon.engine.tick()
        assert paged() == 2
    finally:
        rig.close()


def test_ack_timeout_through_the_store_repages_and_resumes(database_url: str) -> None:
    """The policy's ack timeout ends alice's ack at 11 min: level 0 is paged again and the
    lead follows five minutes later, all driven by `next_action_at` in the store."""
    critical = CONFIG.policies["critical"]
    timed = CONFIG.model_copy(
        update={
            "policies": {
                **CONFIG.policies,
                "critical": critical.model_copy(update={"ack_timeout": timedelta(minutes=10)}),
            }
        }
    )
    rig = Rig(database_url, config=timed)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        rig.walk(1)
        rig.act([alert_id], Ack(by="alice", via="sms"))
        (row,) = alert_rows(rig.factory)
        assert (row.ack_expires_at, row.next_action_at) == (at(11), at(5))
        assert rig.walk(16) == {11: LEVEL_0, 16: LEVEL_1}
        kinds = [(t.kind, t.at) for t in timeline(rig.factory, alert_id)]
        assert ("step_skipped", at(5)) in kinds
        assert ("ack_expired", at(11)) in kinds
        skipped = [t.level for t in timeline(rig.factory, alert_id) if t.kind == "step_skipped"]
        assert skipped == [1]  # the level that was skipped, not the one last paged
        (row,) = alert_rows(rig.factory)
        assert (row.status, row.acked_by, row.level) == ("triggered", None, 1)
    finally:
        rig.close()


def test_ha_peers_posting_the_same_new_alert_at_once_open_it_once(database_url: str) -> None:
    """Two Alertmanager peers deliver the same group in the same instant: the unique
    (fingerprint, startsAt) and the insert's ON CONFLICT make it one alert, paged once."""
    rig = Rig(database_url)
    try:
        for round_ in range(5):
            fingerprint = f"eeee00000000000{round_}"
            barrier = threading.Barrier(3)
            results: list[object] = []
            errors: list[BaseException] = []

            def peer(
                barrier: threading.Barrier = barrier,
                fingerprint: str = fingerprint,
                results: list[object] = results,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    barrier.wait(timeout=30)
                    results.append(rig.fire(am_alert(fingerprint=fingerprint)))
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=peer) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors
            opened = [r.opened for r in results]  # type: ignore[attr-defined]
            assert sorted(len(o) for o in opened) == [0, 0, 1]
        assert len(alert_rows(rig.factory)) == 5
        assert len(outbox_rows(rig.factory)) == 5 * 2
    finally:
        rig.close()


def test_rolled_back_ingest_leaves_nothing_and_the_next_post_works(database_url: str) -> None:
    """A webhook transaction that fails before commit (store hiccup) writes nothing, and the
    daemon's in-memory caches must not believe otherwise: Alertmanager's retry succeeds."""
    from escalator.ingest.alertmanager import AMWebhook, ingest
    from tests.support.helpers import am_body

    rig = Rig(database_url)
    try:
        payload = AMWebhook.model_validate(am_body(am_alert()))
        try:
            with transaction(rig.factory) as session:
                ingest(
                    session,
                    payload,
                    rig.daemon.config,
                    rig.daemon.paging(session, T0),
                    rig.daemon.policies,
                    T0,
                )
                raise ConnectionError("connection lost before COMMIT")
        except ConnectionError:
            pass
        assert alert_rows(rig.factory) == []
        assert count_rows(rig.factory, PolicyRow) == 0
        retried = rig.fire(am_alert())  # Alertmanager retries the 5xx
        assert len(retried.opened) == 1
        assert [r.level for r in outbox_rows(rig.factory)] == [0, 0]
    finally:
        rig.close()


MILLISECOND_POLICY = """\
people:
  - id: alice
policies:
  fast:
    steps:
      - targets: [{person: alice}]
      - after: 1500ms
        condition: unresolved
        targets: [{person: alice}]
    repeat: {every: 250ms, times: 2}
default_policy: fast
incidents: {enabled: false}
"""


def test_policy_snapshots_keep_milliseconds(database_url: str) -> None:
    """Issue 9: snapshots are stored as text through format_duration, which dropped
    milliseconds: `after: 1500ms` came back as 1s and `every: 250ms` as `0s`, which then
    failed validation on every tick. Stored, read back by a fresh cache, and walked."""
    from escalator.config import parse_config
    from escalator.escalation.policies import PolicyCache

    config = parse_config(MILLISECOND_POLICY)
    rig = Rig(database_url, config=config, start=T0)
    try:
        (alert_id,) = rig.fire(am_alert()).opened
        with transaction(rig.factory) as session:
            (row,) = session.scalars(select(PolicyRow)).all()
            assert row.body["steps"][1]["after"] == "1s500ms"
            assert row.body["repeat"]["every"] == "250ms"
            assert PolicyCache().get(session, row.id) == config.policies["fast"]
        levels = []
        for _ in range(8):  # 0 .. 1.75 s in steps of 250 ms
            levels += [(d.level, d.payload.get("repeat")) for d in rig.step()]
            rig.clock.advance(seconds=0.25)
        # level 0 at once, level 1 at exactly 1.5 s, the two repeats 250 ms apart.
        assert levels == [(0, 0), (1, 0), (1, 1)]
        levels += [(d.level, d.payload.get("repeat")) for d in rig.step()]  # at 2 s
        assert levels == [(0, 0), (1, 0), (1, 1), (1, 2)]
        (alert,) = alert_rows(rig.factory)
        assert (alert.id, alert.repeats_done, alert.next_action_at) == (alert_id, 2, None)
    finally:
        rig.close()
