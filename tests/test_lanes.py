"""Delivery lanes (issue 10): no slow, hung or crashed part holds up delivery.

Real `escalator serve` processes (tests/faults/escalator_proc.py) page through their real
channels to loopback fakes with latency and hang knobs: a Twilio answering each request in
300 ms next to an SMTP relay that accepts connections and never answers; a webhook receiver
taking 1.5 s per message behind two replicas; SIGTERM and SIGKILL mid-send. Then unit tests
of the pieces: the deadline-bounded attempt, worker liveness and the fenced record.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from escalator.config import Engine as EngineSettings
from escalator.engine.runner import wait_until
from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.notify.channels.console import ConsoleChannel
from escalator.notify.lanes import bounded
from escalator.notify.leases import Workers
from escalator.notify.sender import Sender
from escalator.store.clock import FixedClock
from escalator.store.db import make_engine, session_factory, transaction, upgrade
from escalator.store.tables import AlertRow, DeliveryWorkerRow, OutboxRow, PolicyRow
from tests.fakes.fake_chat import FakeChat
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.smtp_sink import HungRelay
from tests.support.payloads import storm_body
from tests.support.ports import free_port
from tests.support.processes import EscalatorProcess, clean_env, dead_pid, post_until_accepted

ACCOUNT_SID = "AC" + "1a" * 16
AUTH_TOKEN = "lanes-twilio-token"
TEAM = 30
GRACE = 3.0


def _critical(tag: str) -> dict[str, object]:
    body = storm_body(tag, [0])
    for alert in body["alerts"]:  # type: ignore[union-attr]
        alert["labels"]["severity"] = "critical"  # type: ignore[index]
    return body


def _post(url: str, body: dict[str, object]) -> float:
    """POST like Alertmanager; returns time.time() of the 2xx answer."""
    with httpx.Client(timeout=10) as client:
        post_until_accepted(client, [url], body, timeout=60)
    return time.time()


def _team_config(path: Path, twilio_url: str, smtp_port: int) -> Path:
    people = "\n".join(
        f'  - id: p{i:02d}\n    phone: "+1555020{i:04d}"\n    email: p{i:02d}@example.com\n'
        f"    rules:\n      page: [{{method: sms}}, {{method: email}}]"
        for i in range(TEAM)
    )
    members = ", ".join(f"p{i:02d}" for i in range(TEAM))
    path.write_text(
        f"engine:\n  tick_interval: 200ms\n  send_retry_base: 200ms\n"
        f"  shutdown_grace: {GRACE:g}s\n"
        f"incidents:\n  enabled: false\n"
        f"channels:\n"
        f"  twilio:\n    account_sid: {ACCOUNT_SID}\n    auth_token: {{env: LANES_TWILIO}}\n"
        f'    from_number: "+15550109999"\n    voice: false\n    api_base_url: {twilio_url}\n'
        f"  email:\n    host: 127.0.0.1\n    port: {smtp_port}\n    security: none\n"
        f"    from_address: escalator@example.com\n"
        f"people:\n{people}\n"
        f"teams:\n  - id: oncall\n    members: [{members}]\n"
        f"policies:\n  crit:\n    steps:\n      - after: 0s\n        targets: [{{team: oncall}}]\n"
        f"default_policy: crit\n"
    )
    return path


@pytest.fixture
def slow_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    fake.delay = 0.3
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def hung_smtp() -> Iterator[HungRelay]:
    relay = HungRelay().start()
    try:
        yield relay
    finally:
        relay.stop()


def _team_daemon(
    database_url: str, tmp_path: Path, twilio: FakeTwilio, relay: HungRelay
) -> EscalatorProcess:
    config = _team_config(tmp_path / "escalator.yaml", twilio.base_url, relay.port)
    daemon = EscalatorProcess(
        tmp_path, config, database_url, free_port(), clean_env(LANES_TWILIO=AUTH_TOKEN),
        name="lanes", log_level="warning",
    )  # fmt: skip
    daemon.start()
    daemon.wait_ready()
    return daemon


def test_slow_twilio_beside_a_hung_smtp_relay_pages_the_team_in_time(
    database_url: str, tmp_path: Path, slow_twilio: FakeTwilio, hung_smtp: HungRelay
) -> None:
    daemon = _team_daemon(database_url, tmp_path, slow_twilio, hung_smtp)
    try:
        answered = _post(daemon.url, _critical(uuid.uuid4().hex[:8]))
        assert wait_until(lambda: len(slow_twilio.messages()) >= TEAM, timeout=20), (
            f"{len(slow_twilio.messages())} SMS\n{daemon.stderr()}"
        )
        texts = slow_twilio.messages()
        assert len({m.to for m in texts}) == TEAM and len(texts) == TEAM
        last = max(m.accepted_at for m in texts) - answered
        rounds = sorted(round(m.accepted_at - answered, 2) for m in texts)
        print(f"30 SMS at 300 ms each, SMTP hung: last accepted {last:.2f}s after the 2xx")
        print(f"accepted at (s after the 2xx): {rounds}")
        assert hung_smtp.connections >= 1, "the email lane never tried the hung relay"
        metrics = httpx.get(f"{daemon.url}/metrics", timeout=5).text
        assert 'escalator_delivery_attempts_total{channel="sms",outcome="sent"} 30.0' in metrics
        assert 'escalator_delivery_in_flight{channel="email"} 4.0' in metrics  # its pool
        for name in (
            "escalator_delivery_attempt_seconds_bucket",
            "escalator_delivery_queue_depth",
            "escalator_delivery_oldest_due_seconds",
            "escalator_delivery_lane_last_cycle_timestamp_seconds",
            "escalator_engine_last_tick_timestamp_seconds",
        ):
            assert name in metrics, name
        assert last <= 1.5, f"the last SMS went {last:.2f}s after the webhook's 2xx"
    finally:
        daemon.stop()


def test_sigterm_with_sends_hung_exits_zero_within_the_grace(
    database_url: str, tmp_path: Path, slow_twilio: FakeTwilio, hung_smtp: HungRelay
) -> None:
    daemon = _team_daemon(database_url, tmp_path, slow_twilio, hung_smtp)
    assert daemon.popen is not None
    _post(daemon.url, _critical(uuid.uuid4().hex[:8]))
    # Mid-page: some SMS out, the email lane stuck on the relay.
    assert wait_until(lambda: len(slow_twilio.messages()) >= 8 and hung_smtp.connections, 20)
    sent = time.monotonic()
    daemon.popen.send_signal(signal.SIGTERM)
    try:
        code = daemon.popen.wait(timeout=GRACE + 10)
    except subprocess.TimeoutExpired:
        daemon.popen.kill()
        raise
    took = time.monotonic() - sent
    print(f"SIGTERM to exit: {took:.2f}s (grace {GRACE:g}s)")
    assert code == 0, daemon.stderr()
    # Within the grace; the interpreter's own exit may add a little on a loaded machine.
    assert took <= GRACE + 0.5, f"exit took {took:.2f}s"
    engine = make_engine(database_url)
    with engine.connect() as conn:
        owned = conn.execute(select(OutboxRow.id).where(OutboxRow.status == "sending")).all()
        workers = conn.execute(select(DeliveryWorkerRow.id)).all()
    engine.dispose()
    assert owned == [], "pages still owned by the stopped daemon"
    assert workers == [], "the stopped daemon left its worker registered"


def _hooks_env(receiver: FakeChat, hooks: int) -> dict[str, str]:
    """Webhook URLs are secrets: they reach the daemon through the environment."""
    return {f"LANES_HOOK_{i:02d}": receiver.url(f"/h{i:02d}") for i in range(hooks)}


def _hooks_config(path: Path, receiver: FakeChat, hooks: int, tick: str = "200ms") -> Path:
    endpoints = "\n".join(f"      h{i:02d}: {{env: LANES_HOOK_{i:02d}}}" for i in range(hooks))
    targets = ", ".join(f"{{channel: h{i:02d}}}" for i in range(hooks))
    path.write_text(
        f"engine:\n  tick_interval: {tick}\n  send_retry_base: 200ms\n  shutdown_grace: 2s\n"
        f"incidents:\n  enabled: false\n"
        f"channels:\n  webhook:\n    endpoints:\n{endpoints}\n"
        f"policies:\n  hooks:\n    steps:\n      - after: 0s\n        targets: [{targets}]\n"
        f"default_policy: hooks\n"
    )
    return path


@pytest.fixture
def receiver() -> Iterator[FakeChat]:
    fake = FakeChat().start()
    try:
        yield fake
    finally:
        fake.stop()


def _hook_replicas(
    database_url: str, tmp_path: Path, receiver: FakeChat, hooks: int
) -> list[EscalatorProcess]:
    """Two replicas paging `hooks` webhook targets on `receiver`, started and ready (each
    started before either is waited for, as a deployment rolls them out)."""
    config = _hooks_config(tmp_path / "escalator.yaml", receiver, hooks)
    env = clean_env(**_hooks_env(receiver, hooks))
    replicas = [
        EscalatorProcess(
            tmp_path, config, database_url, free_port(), env, name=f"replica{i}",
            log_level="warning",
        )
        for i in range(2)
    ]
    for replica in replicas:
        replica.start()
    try:
        for replica in replicas:
            replica.wait_ready()
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


def test_two_replicas_deliver_forty_slow_webhooks_exactly_once(
    pg_url: str, tmp_path: Path, receiver: FakeChat
) -> None:
    receiver.delay = 1.5
    replicas = _hook_replicas(pg_url, tmp_path, receiver, 40)
    try:
        body = storm_body(uuid.uuid4().hex[:8], [0])
        _post(replicas[0].url, body)
        _post(replicas[1].url, body)  # the clustered Alertmanager's peer delivers it too
        assert wait_until(lambda: len(receiver.posts) >= 40, timeout=60), (
            f"{len(receiver.posts)} posts\n" + "\n".join(r.stderr() for r in replicas)
        )
        time.sleep(3.5)  # anything sent twice would have arrived by now
        paths = Counter(path for path, _ in receiver.posts)
        assert set(paths) == {f"/h{i:02d}" for i in range(40)}
        twice = {p: n for p, n in paths.items() if n != 1}
        assert not twice, f"sent more than once: {twice}"
        assert len(receiver.posts) == 40
    finally:
        for replica in replicas:
            replica.stop()


def test_sigkill_mid_send_resends_within_five_seconds_at_most_once_more(
    database_url: str, tmp_path: Path, receiver: FakeChat
) -> None:
    receiver.delay = 2.0
    config = _hooks_config(tmp_path / "escalator.yaml", receiver, 1)
    daemon = EscalatorProcess(
        tmp_path, config, database_url, free_port(), clean_env(**_hooks_env(receiver, 1)),
        name="daemon", log_level="warning",
    )  # fmt: skip
    # Requests are counted as they arrive: the first is cut off by the kill, but the
    # receiver still takes it (the "provider accepted, never recorded" window).
    try:
        daemon.start()
        daemon.wait_ready()
        _post(daemon.url, storm_body(uuid.uuid4().hex[:8], [0]))
        assert wait_until(lambda: receiver.started, timeout=20), daemon.stderr()
        daemon.kill9()
        killed = time.time()
        daemon.start()  # same store; its own dead worker's page is taken back at once
        assert wait_until(lambda: len(receiver.started) >= 2, timeout=15), daemon.stderr()
        resent = receiver.started[1] - killed
        print(f"SIGKILL mid-send: re-sent {resent:.2f}s after the kill")
        assert resent <= 5.0, f"re-sent {resent:.2f}s after the kill"
        assert wait_until(lambda: len(receiver.posts) >= 2, timeout=10)
        time.sleep(2.5)
        assert len(receiver.started) == 2, "sent more than once more"
        engine = make_engine(database_url)
        with engine.connect() as conn:
            statuses = [s for (s,) in conn.execute(select(OutboxRow.status))]
        engine.dispose()
        assert statuses == ["sent"]
    finally:
        daemon.stop()


@pytest.mark.parametrize("noticed_by", ["pid", "heartbeat"])
def test_a_replica_takes_over_a_dead_replicas_page_within_five_seconds(
    database_url: str, tmp_path: Path, receiver: FakeChat, noticed_by: str
) -> None:
    """No restart: the surviving replica takes the page over. On one host it sees the pid
    gone at once; as if on another host (the worker's hostname rewritten) it waits for the
    heartbeat to age past 3 s."""
    receiver.delay = 2.0
    replicas = _hook_replicas(database_url, tmp_path, receiver, 1)
    try:
        _post(replicas[0].url, storm_body(uuid.uuid4().hex[:8], [0]))
        assert wait_until(lambda: receiver.started, timeout=20)
        engine = make_engine(database_url)
        with engine.connect() as conn:
            owner = conn.execute(
                select(OutboxRow.leased_by).where(OutboxRow.status == "sending")
            ).scalar_one()
            if noticed_by == "heartbeat":
                conn.execute(
                    update(DeliveryWorkerRow)
                    .where(DeliveryWorkerRow.id == owner)
                    .values(hostname="elsewhere.invalid")
                )
                conn.commit()
        engine.dispose()
        pid = int(owner.split(":")[1])
        (sending,) = [r for r in replicas if r.popen is not None and r.popen.pid == pid]
        sending.kill9()
        killed = time.time()
        assert wait_until(lambda: len(receiver.started) >= 2, timeout=15)
        took = receiver.started[1] - killed
        print(f"replica SIGKILLed mid-send ({noticed_by}): taken over {took:.2f}s after the kill")
        assert took <= 5.0, f"taken over {took:.2f}s after the kill"
        time.sleep(2.5)
        assert len(receiver.started) == 2, "sent more than once more"
    finally:
        for replica in replicas:
            replica.stop()


# unit tests: the pieces ---------------------------------------------------------------------


def test_a_hung_attempt_frees_its_slot_at_the_deadline() -> None:
    release = threading.Event()

    def hang() -> SendResult:
        release.wait(30)
        return SendResult("sent")

    started = time.monotonic()
    result, late = bounded(hang, 0.3, "email")
    took = time.monotonic() - started
    release.set()
    assert late and result.outcome == "retry" and "deadline" in result.detail
    assert 0.25 <= took < 1.0
    quick, late = bounded(lambda: SendResult("sent", "ok"), 5, "sms")
    assert not late and quick.outcome == "sent"
    boom, late = bounded(lambda: 1 / 0, 5, "chat")  # type: ignore[arg-type,return-value]
    assert not late and boom.outcome == "retry" and "ZeroDivisionError" in boom.detail


@pytest.fixture
def store(database_url: str) -> Iterator[str]:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    yield database_url


def test_workers_stale_heartbeats_and_dead_local_pids_are_not_live(store: str) -> None:
    engine = make_engine(store)
    factory = session_factory(engine)
    me = Workers(factory)
    me.register()
    now = datetime.now(UTC)
    with transaction(factory) as session:
        for wid, host, pid, beat in (
            ("fresh-elsewhere", "other-host", 1, now),
            ("stale-elsewhere", "other-host", 2, now - timedelta(seconds=10)),
            ("dead-here", me.hostname, dead_pid(), now),
            ("alive-here", me.hostname, os.getppid(), now),  # a live pid: never by host alone
        ):
            session.add(
                DeliveryWorkerRow(id=wid, hostname=host, pid=pid, started_at=now, heartbeat_at=beat)
            )
    # Just (re)connected: until our own heartbeat has run for 3 s, an old heartbeat may be
    # the store's outage, not a death; a dead pid here is certain at once.
    me.healthy_since = time.monotonic()
    with transaction(factory) as session:
        live = set(me.live(session))
    assert live == {me.id, "fresh-elsewhere", "stale-elsewhere", "alive-here"}
    me.healthy_since = time.monotonic() - 5
    with transaction(factory) as session:
        live = set(me.live(session))
    assert live == {me.id, "fresh-elsewhere", "alive-here"}
    me.stop()
    with transaction(factory) as session:
        assert session.get(DeliveryWorkerRow, me.id) is None
    engine.dispose()


class _Recording:
    method = "console"

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        self.sent.append(delivery.id)
        return SendResult("sent", "ok")


def _notice(factory: object, now: datetime) -> int:
    with transaction(factory) as session:  # type: ignore[arg-type]
        row = OutboxRow(
            alert_id=None,
            recipient_kind="person",
            recipient="alice",
            method="console",
            address=None,
            level=None,
            urgency="notify",
            condition=None,
            reason="test",
            payload={"text": "hello", "title": "hello"},
            status="pending",
            due_at=now,
            attempts=0,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return row.id


def test_the_record_of_a_page_taken_over_is_fenced_off(store: str) -> None:
    """A worker presumed dead that comes back must not record over the new owner's attempt,
    and a page owned by a live worker is never claimed by another."""
    engine = make_engine(store)
    factory = session_factory(engine)
    clock = FixedClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    first, second = _Recording(), _Recording()
    a = Sender(factory, {"console": first}, clock, EngineSettings())
    b = Sender(factory, {"console": second}, clock, EngineSettings())
    a._workers.register()
    b._workers.register()
    b._workers.healthy_since = time.monotonic() - 5  # b has been watching for a while
    row_id = _notice(factory, clock.now())
    claimed = a.claim_for("console", 4)
    assert [x.row_ids for x in claimed] == [(row_id,)]
    assert b.claim_for("console", 4) == [], "b took a page a live worker has in flight"
    # a goes silent: its heartbeat ages past the takeover bound.
    with transaction(factory) as session:
        session.execute(
            update(DeliveryWorkerRow)
            .where(DeliveryWorkerRow.id == a.worker)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=10))
        )
    taken = b.claim_for("console", 4)
    assert [x.row_ids for x in taken] == [(row_id,)]
    a._record_many([_attempt(claimed[0], SendResult("sent", "late", "late-id"))])
    with transaction(factory) as session:
        row = session.get(OutboxRow, row_id)
        assert row is not None and row.status == "sending" and row.leased_by == b.worker
    b._record_many([_attempt(taken[0], SendResult("sent", "ok", "b-id"))])
    with transaction(factory) as session:
        row = session.get(OutboxRow, row_id)
        assert row is not None and (row.status, row.provider_id) == ("sent", "b-id")
        assert row.attempts == 2
    engine.dispose()


def _attempt(bundle: object, result: SendResult) -> object:
    from escalator.notify.lanes import Attempt

    return Attempt(bundle, result)  # type: ignore[arg-type]


def test_a_hung_channel_does_not_hold_up_another_lane(store: str) -> None:
    """Lanes in one process: email hangs past its deadline, the console keeps printing."""
    from escalator.config import parse_config

    engine = make_engine(store)
    factory = session_factory(engine)
    clock = FixedClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    config = parse_config(
        "channels:\n  lanes:\n    email: {pool: 2, deadline: 500ms}\n"
        "people:\n  - id: alice\n    email: a@example.com\n"
        "policies:\n  p:\n    steps: [{targets: [{person: alice}]}]\n"
    )
    stuck = threading.Event()

    class Hung:
        method = "email"

        def send(self, delivery: Delivery, message: Message) -> SendResult:
            stuck.wait(30)
            return SendResult("sent")

    out = io.StringIO()
    sender = Sender(
        factory, {"console": ConsoleChannel(out), "email": Hung()}, clock, config.engine,
        config=config,
    )  # fmt: skip
    mail = [_notice(factory, clock.now()) for _ in range(3)]
    with transaction(factory) as session:
        session.execute(
            update(OutboxRow).where(OutboxRow.id.in_(mail)).values(method="email", address="a@x")
        )
    pages = [_notice(factory, clock.now()) for _ in range(5)]
    sender.start(timedelta(milliseconds=100))
    try:
        started = time.monotonic()
        assert wait_until(lambda: out.getvalue().count("\n") >= 5, timeout=5)
        assert time.monotonic() - started < 1.0, "the console waited for the hung email lane"
        assert wait_until(lambda: sender.lanes["email"].in_flight == 2, timeout=2)
        time.sleep(0.1)
        assert sender.lanes["email"].in_flight == 2  # its pool, no more

        def retried() -> bool:
            with transaction(factory) as session:
                rows = session.scalars(select(OutboxRow).where(OutboxRow.id.in_(mail))).all()
                return sum(1 for r in rows if r.last_error and "deadline" in r.last_error) >= 2

        assert wait_until(retried, timeout=5)
        with transaction(factory) as session:
            done = session.scalars(select(OutboxRow.status).where(OutboxRow.id.in_(pages))).all()
        assert set(done) == {"sent"}
    finally:
        stuck.set()
        sender.stop(timedelta(seconds=2))
        engine.dispose()


def _alert_and_sms(factory: object, now: datetime, name: str, seq: int) -> int:
    """An alert and its pending SMS page to alice; returns the outbox row id."""
    with transaction(factory) as session:  # type: ignore[arg-type]
        if session.get(PolicyRow, "p") is None:
            session.add(PolicyRow(id="p", name="p", body={}, created_at=now))
            session.flush()
        alert = AlertRow(
            fingerprint=f"{seq:016x}", starts_at=now, ends_at=None, alertname=name,
            identity=f"{seq}", severity="critical", labels={"alertname": name},
            annotations={}, generator_url=None, policy_name="p", policy_id="p",
            status="triggered", level=0, next_step=1, repeats_done=0, opened_at=now,
            clock_base=now, next_action_at=None, updated_at=now,
        )  # fmt: skip
        session.add(alert)
        session.flush()
        row = OutboxRow(
            alert_id=alert.id, recipient_kind="person", recipient="alice", method="sms",
            address="+15550100001", level=0, urgency="page", condition="unacknowledged",
            reason="level 0", payload={}, status="pending", due_at=now, attempts=0,
            created_at=now,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def test_a_bundle_in_flight_at_another_replica_holds_the_next_page(store: str) -> None:
    """Replica a is sending alice an SMS; replica b finds a second page of the same
    incident due: it waits for the bundle window (counted from a's claim) instead of
    sending a second message at once. A page of a new incident still goes at once."""
    from escalator.config import parse_config

    engine = make_engine(store)
    factory = session_factory(engine)
    clock = FixedClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    config = parse_config(
        "people:\n  - id: alice\n    phone: '+15550100001'\n"
        "policies:\n  p:\n    steps: [{targets: [{person: alice}]}]\n"
    )
    a = Sender(factory, {"sms": _Recording()}, clock, config.engine, config=config)
    b = Sender(factory, {"sms": _Recording()}, clock, config.engine, config=config)
    a._workers.register()
    b._workers.register()
    first = _alert_and_sms(factory, clock.now(), "DiskFull", 1)
    flying = a.claim_for("sms", 8)
    assert [x.row_ids for x in flying] == [(first,)]
    clock.advance(seconds=2)
    second = _alert_and_sms(factory, clock.now(), "DiskFull", 2)
    assert b.claim_for("sms", 8) == []
    with transaction(factory) as session:
        held = session.get(OutboxRow, second)
        assert held is not None and held.status == "pending"
        assert (held.last_error or "").startswith("held: bundle window")
        assert held.due_at == clock.now() + timedelta(seconds=8)  # 10 s after a's claim
    other = _alert_and_sms(factory, clock.now(), "PaymentsDown", 3)
    sent = b.claim_for("sms", 8)
    # The new incident goes at once and takes the held page along: one message.
    assert [sorted(x.row_ids) for x in sent] == [sorted([other, second])]
    engine.dispose()


def test_recording_a_send_does_not_wait_for_ingests_lock_on_the_alert(pg_url: str) -> None:
    """PostgreSQL: ingest holds FOR UPDATE on the alert while the page's send is recorded
    (sent, and failed with a fallback row added): neither waits for it."""
    from sqlalchemy import text

    from escalator.config import parse_config

    engine = make_engine(pg_url)
    upgrade(engine)
    factory = session_factory(engine)
    clock = FixedClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    config = parse_config(
        "people:\n  - id: alice\n    phone: '+15550100001'\n    email: a@example.com\n"
        "policies:\n  p:\n    steps: [{targets: [{person: alice}]}]\n"
    )
    channels = {"sms": _Recording(), "email": _Recording()}
    sender = Sender(factory, channels, clock, config.engine, config=config)
    sender._workers.register()
    first = _alert_and_sms(factory, clock.now(), "DiskFull", 1)
    second = _alert_and_sms(factory, clock.now(), "DiskFull", 2)
    (bundle,) = sender.claim_for("sms", 1)  # one message for both
    assert sorted(bundle.row_ids) == [first, second]
    third = _alert_and_sms(factory, clock.now(), "PaymentsDown", 3)  # a new incident
    (lone,) = sender.claim_for("sms", 1)
    assert lone.row_ids == (third,)
    with transaction(factory) as session:
        alerts = [session.get(OutboxRow, i).alert_id for i in (first, second, third)]  # type: ignore[union-attr]
    ingest = engine.connect()
    try:
        ingest.execute(text("SET lock_timeout = '20s'"))
        ingest.execute(
            text("SELECT id FROM alerts WHERE id = ANY(:ids) FOR UPDATE"), {"ids": alerts}
        )
        record = threading.Thread(
            target=sender._record_many,
            args=(
                [
                    _attempt(bundle, SendResult("failed", "twilio 400 code 21211")),
                    _attempt(lone, SendResult("sent", "ok", "SM3")),
                ],
            ),
        )
        record.start()
        record.join(timeout=3)
        waited = record.is_alive()
    finally:
        ingest.rollback()  # ingest commits: a waiting record would go on now
        ingest.close()
    record.join(timeout=10)
    assert not waited, "recording the send waited for ingest's lock on the alert"
    with transaction(factory) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        assert [(r.method, r.status) for r in rows] == [
            ("sms", "failed"),
            ("sms", "failed"),
            ("sms", "sent"),
            ("email", "pending"),  # the fallbacks, added under ingest's lock
            ("email", "pending"),
        ]
    engine.dispose()


def test_readiness_fails_when_the_engine_or_a_lane_stops_cycling(store: str) -> None:
    from escalator.engine.runner import Runner

    engine = make_engine(store)
    factory = session_factory(engine)
    clock = FixedClock(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    sender = Sender(factory, {"console": ConsoleChannel(io.StringIO())}, clock, EngineSettings())
    runner = Runner(None, sender, timedelta(milliseconds=200))  # type: ignore[arg-type]
    assert runner.ready() is None  # not started: nothing to say
    sender.start(timedelta(milliseconds=100))
    try:
        runner.started_at = runner.last_tick = time.time()
        assert runner.ready() is None
        runner.last_tick = time.time() - 11
        assert "engine has not completed a tick" in (runner.ready() or "")
        runner.last_tick = time.time()
        lane = sender.lanes["console"]
        lane.stop_claiming()  # its dispatcher ends: a wedged lane
        time.sleep(0.3)
        lane.last_cycle = time.time() - 11
        assert "lane console" in (runner.ready() or "")
    finally:
        sender.stop(timedelta(seconds=1))
        engine.dispose()
