"""Heartbeats, maintenance windows and Events v2 through the daemon's own HTTP app and
engine, on a fixed clock, on both real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from escalator.config import Config, parse_config
from escalator.ingest.heartbeat_store import record_beats
from escalator.store.db import transaction
from escalator.store.tables import (
    AlertRow,
    AlertSlaRow,
    ChangeEventRow,
    HeartbeatRow,
    IncidentRow,
    MaintenanceRow,
    OutboxRow,
    SuppressionRow,
    TimelineRow,
)
from escalator.web.app import create_app
from tests.support.helpers import (
    SHIPPED_CONFIG,
    T0,
    alert_rows,
    am_alert,
    am_body,
    count_rows,
    outbox_rows,
    timeline,
)
from tests.support.rig import Rig

HOOK = "hook-secret-0123456789"
API = "api-secret-9876543210"
CRON = "cron-secret-5555555555"
GRAFANA = "0123456789abcdef0123456789abcdef"  # a 32-character routing key, as PagerDuty's
SENTRY = "fedcba9876543210fedcba9876543210"
HOOK_AUTH = {"Authorization": f"Bearer {HOOK}"}
API_AUTH = {"Authorization": f"Bearer {API}"}


def sources_config(**extra: Any) -> Config:
    data: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["heartbeats"].append(
        {
            "name": "nightly-backup",
            "interval": "24h",
            "grace": "1h",
            "severity": "warning",
            "policy": "critical",  # a fixed policy instead of the routes
            "token": {"env": "TEST_CRON_TOKEN"},
        }
    )
    data["integrations"] = [
        {"name": "grafana", "key": {"env": "TEST_GRAFANA_KEY"}, "labels": {"service": "ledger"}},
        {
            "name": "sentry",
            "key": {"env": "TEST_SENTRY_KEY"},
            "policy": "info",
            "rate_limit": {"max": 3, "per": "1m"},
        },
    ]
    data.update(extra)
    return parse_config(yaml.safe_dump(data), "sources.yaml")


@pytest.fixture
def rig(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    for name, value in (
        ("ESCALATOR_WEBHOOK_TOKEN", HOOK),
        ("ESCALATOR_API_TOKEN", API),
        ("TEST_CRON_TOKEN", CRON),
        ("TEST_GRAFANA_KEY", GRAFANA),
        ("TEST_SENTRY_KEY", SENTRY),
    ):
        monkeypatch.setenv(name, value)
    made = Rig(database_url, config=sources_config(), heartbeats=True)
    yield made
    made.close()


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    with TestClient(create_app(rig.daemon, run_engine=False), client=("10.0.0.7", 40000)) as c:
        yield c


def webhook(client: TestClient, *alerts: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/webhooks/alertmanager", json=am_body(*alerts), headers=HOOK_AUTH)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def watchdog(status: str = "firing") -> dict[str, Any]:
    alert = am_alert("aaaa0000watchdog", status=status, alertname="Watchdog", severity="none")
    alert["startsAt"] = "2026-03-01T00:00:00Z"
    return alert


def heartbeat_row(rig: Rig, name: str) -> HeartbeatRow:
    with transaction(rig.factory) as session:
        row = session.get(HeartbeatRow, name)
        assert row is not None
        return row


def missed_alerts(rig: Rig, heartbeat: str) -> list[AlertRow]:
    return [
        a
        for a in alert_rows(rig.factory)
        if a.alertname == "HeartbeatMissed" and a.labels["heartbeat"] == heartbeat
    ]


def kinds(rig: Rig, alert_id: int) -> list[str]:
    return [e.kind for e in timeline(rig.factory, alert_id, escalation_only=False)]


# Heartbeats -------------------------------------------------------------------------------


def test_watchdog_beats_the_heartbeat_and_is_never_tracked(rig: Rig, client: TestClient) -> None:
    for beat in range(1, 4):  # repeats of one body are beats too, never a cached no-op
        answer = webhook(client, watchdog())
        assert answer["heartbeats"] == ["watchdog"]
        assert answer["opened"] == [] and answer["updated"] == 0
        assert heartbeat_row(rig, "watchdog").beats == beat
    assert alert_rows(rig.factory) == []
    # A Watchdog alongside a real alert: the real one opens, the Watchdog only beats.
    answer = webhook(client, watchdog(), am_alert())
    assert len(answer["opened"]) == 1
    assert [a.alertname for a in alert_rows(rig.factory)] == ["CredLinkAPIDown"]
    # A resolved Watchdog (Prometheus stopped evaluating it) is no beat and no alert.
    before = heartbeat_row(rig, "watchdog").beats
    webhook(client, watchdog("resolved"))
    assert heartbeat_row(rig, "watchdog").beats == before


def test_silent_watchdog_pages_and_the_next_beat_resolves(rig: Rig, client: TestClient) -> None:
    webhook(client, watchdog())
    rig.clock.advance(minutes=4, seconds=59)
    assert rig.step() == []
    assert missed_alerts(rig, "watchdog") == []
    rig.clock.advance(seconds=1)  # interval 1m + grace 4m after the last beat
    pages = rig.step()
    (missed,) = missed_alerts(rig, "watchdog")
    assert missed.status == "triggered" and missed.policy_name == "critical"
    assert missed.labels["severity"] == "critical" and missed.labels["service"] == "monitoring"
    assert {(d.alert_id, d.level) for d in pages} == {(missed.id, 0)}
    assert heartbeat_row(rig, "watchdog").state == "missed"
    # Later ticks neither page it again from scratch nor open a second alert.
    rig.clock.advance(minutes=1)
    rig.step()
    assert len(missed_alerts(rig, "watchdog")) == 1
    # A critical alert, so it is an incident like any other.
    with transaction(rig.factory) as session:
        assert session.get(IncidentRow, missed.id) is not None
    # Alertmanager is back: the next Watchdog resolves it.
    answer = webhook(client, watchdog())
    assert answer["resolved"] == [missed.id]
    (closed,) = missed_alerts(rig, "watchdog")
    assert (closed.status, closed.resolved_by) == ("resolved", "heartbeat")
    assert heartbeat_row(rig, "watchdog").state == "ok"
    assert all(r.status != "pending" for r in outbox_rows(rig.factory, missed.id))
    # Silent again later: a new occurrence, a new alert.
    rig.clock.advance(minutes=6)
    rig.step()
    assert [a.status for a in missed_alerts(rig, "watchdog")] == ["resolved", "triggered"]


def test_a_daemon_that_was_down_does_not_page_for_its_own_downtime(database_url: str) -> None:
    config = sources_config(integrations=[])
    first = Rig(database_url, config=config, heartbeats=True)
    try:
        now = first.clock.now()
        with transaction(first.factory) as session:
            record_beats(
                session, ["watchdog"], "alertmanager", config,
                first.daemon.paging(session, now), first.daemon.policies, now,
            )  # fmt: skip
    finally:
        first.close()
    # Down for an hour: the last beat is long overdue, but this daemon only just started.
    second = Rig(database_url, config=config, heartbeats=True, start=T0 + timedelta(hours=1))
    try:
        second.step()
        second.clock.advance(minutes=4)
        second.step()
        assert missed_alerts(second, "watchdog") == []
        second.clock.advance(minutes=1)  # startup grace (interval + grace) has passed
        second.step()
        (missed,) = missed_alerts(second, "watchdog")
        # Its occurrence starts at the deadline, which the description dates.
        assert missed.starts_at == T0 + timedelta(hours=1, minutes=5)
        assert "since 2026-03-02T19:00:00+00:00" in missed.annotations["description"]
    finally:
        second.close()


def test_cron_heartbeat_over_http(rig: Rig, client: TestClient) -> None:
    url = "/heartbeats/nightly-backup"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": f"Bearer {API}"}).status_code == 401
    assert client.post(url, headers={"Authorization": f"Bearer {CRON}x"}).status_code == 401
    # Unknown names answer like wrong tokens, and the Watchdog has no token at all.
    auth = {"Authorization": f"Bearer {CRON}"}
    assert client.post("/heartbeats/nope", headers=auth).status_code == 401
    assert client.post("/heartbeats/watchdog", headers=auth).status_code == 401
    assert count_rows(rig.factory, HeartbeatRow) == 0
    answer = client.post(url, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["due_at"] == (T0 + timedelta(hours=25)).isoformat()
    rig.clock.advance(hours=25)
    webhook(client, watchdog())  # keep the watchdog quiet; this is about the backup
    rig.step()
    (missed,) = missed_alerts(rig, "nightly-backup")
    assert missed.policy_name == "critical"  # the heartbeat's fixed policy
    assert missed.labels["severity"] == "warning"
    listed = client.get("/api/v1/heartbeats", headers=API_AUTH).json()
    states = {h["name"]: (h["state"], h["alert_id"]) for h in listed}
    assert states == {"watchdog": ("ok", None), "nightly-backup": ("missed", missed.id)}
    assert client.get("/api/v1/heartbeats").status_code == 401
    answer = client.post(url, headers=auth)
    assert answer.json()["resolved"] == [missed.id]
    (closed,) = missed_alerts(rig, "nightly-backup")
    assert closed.status == "resolved"


# Maintenance windows ----------------------------------------------------------------------


def add_window(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/maintenance",
        json={"reason": "payments deploy", "by": "erin", **body},
        headers=API_AUTH,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def payments(fingerprint: str, **labels: str) -> dict[str, Any]:
    return am_alert(fingerprint, service="payments", alertname="PaymentsDown", **labels)


def test_window_holds_matching_alerts_and_releases_them_at_its_end(
    rig: Rig, client: TestClient
) -> None:
    created = add_window(client, match={"service": "payments"}, **{"for": "1h"})
    assert created["id"].startswith("#") and created["held"] == []
    held = webhook(client, payments("p1"))
    (held_id,) = held["opened"]
    assert held["suppressed"] == [held_id]
    cleared = webhook(client, payments("p2"))["opened"][0]  # resolves during the window
    other = webhook(client, am_alert("o1"))["opened"][0]  # not matched: pages as usual
    assert {d.alert_id for d in rig.step()} == {other}
    assert outbox_rows(rig.factory, held_id) == []
    with transaction(rig.factory) as session:
        assert session.get(IncidentRow, held_id) is None  # no incident while held
        assert session.get(AlertSlaRow, held_id) is None
        assert session.get(IncidentRow, other) is not None
    assert "maintenance" in kinds(rig, held_id)
    shown = client.get(f"/api/v1/alerts/{held_id}", headers=API_AUTH).json()
    assert shown["maintenance"] == {"window": created["id"], "until": "2026-03-02T20:00:00Z"}
    listed_alerts = client.get("/api/v1/alerts", headers=API_AUTH).json()
    assert {a["id"] for a in listed_alerts if a["maintenance"]} == {held_id, cleared}
    listed = client.get("/api/v1/maintenance", headers=API_AUTH).json()
    assert [(w["id"], w["state"], w["holding"]) for w in listed] == [(created["id"], "active", 2)]
    # Forty minutes in, p2 clears; nothing of p1/p2 has paged.
    for _ in range(40):
        rig.clock.advance(minutes=1)
        assert not {d.alert_id for d in rig.step()} & {held_id, cleared}
    resolved = am_alert("p2", status="resolved", service="payments", alertname="PaymentsDown")
    resolved["endsAt"] = rig.clock.now().isoformat()
    webhook(client, resolved)
    for _ in range(19):
        rig.clock.advance(minutes=1)
        assert not {d.alert_id for d in rig.step()} & {held_id, cleared}
    rig.clock.advance(minutes=1)  # the hour is up: p1 still fires
    sent = rig.step()
    assert {(d.alert_id, d.level) for d in sent if d.alert_id == held_id} == {(held_id, 0)}
    assert cleared not in {d.alert_id for d in sent}
    (row,) = [a for a in alert_rows(rig.factory) if a.id == held_id]
    assert row.clock_base == T0 + timedelta(hours=1)  # escalates as if it opened now
    with transaction(rig.factory) as session:
        assert session.get(IncidentRow, held_id) is not None
        sla = session.get(AlertSlaRow, held_id)
        assert sla is not None and sla.due_at == T0 + timedelta(hours=1, minutes=5)
    assert "maintenance_ended" in kinds(rig, held_id)
    shown = client.get(f"/api/v1/alerts/{held_id}", headers=API_AUTH).json()
    assert shown["maintenance"] is None
    ended = [e.detail for e in timeline(rig.factory, cleared, escalation_only=False)]
    assert any("resolved during it and paged no one" in d for d in ended)
    assert outbox_rows(rig.factory, cleared) == []
    # Level 1 follows five minutes later, as for any new critical alert.
    rig.clock.advance(minutes=5)
    assert (held_id, 1) in {(d.alert_id, d.level) for d in rig.step()}


def test_ending_a_window_early_escalates_what_it_held(rig: Rig, client: TestClient) -> None:
    created = add_window(
        client, match_re={"service": "pay.*"}, until=(T0 + timedelta(hours=2)).isoformat()
    )
    number = int(created["id"].lstrip("#"))
    (held_id,) = webhook(client, payments("p1"))["opened"]
    rig.clock.advance(minutes=10)
    assert rig.step() == []
    end = f"/api/v1/maintenance/{number}/end"
    bad = client.post(end, json={"by": "mallory"}, headers=API_AUTH)
    assert bad.status_code == 422
    missing = client.post(
        f"/api/v1/maintenance/{number + 1}/end", json={"by": "erin"}, headers=API_AUTH
    )
    assert missing.status_code == 404
    ended = client.post(end, json={"by": "erin"}, headers=API_AUTH)
    assert ended.status_code == 200, ended.text
    assert {(d.alert_id, d.level) for d in rig.step()} == {(held_id, 0)}
    with transaction(rig.factory) as session:
        window = session.get(MaintenanceRow, number)
        assert window is not None and window.ended_by == "erin"
    # A new matching alert is no longer held.
    assert webhook(client, payments("p3"))["suppressed"] == []


def test_already_escalating_alerts_keep_escalating_unless_include_open(
    rig: Rig, client: TestClient
) -> None:
    (kept,) = webhook(client, payments("p1"))["opened"]
    (quiet,) = webhook(client, am_alert("d1", service="db", alertname="DbDown"))["opened"]
    assert {d.alert_id for d in rig.step()} == {kept, quiet}
    add_window(client, match={"service": "payments"}, **{"for": "30m"})
    created = add_window(client, match={"service": "db"}, include_open=True, **{"for": "30m"})
    assert created["held"] == [quiet]
    rig.clock.advance(minutes=5)
    levels = {(d.alert_id, d.level) for d in rig.step()}
    assert (kept, 1) in levels  # the payments outage was already broken: keeps escalating
    assert not [lv for a, lv in levels if a == quiet]
    rig.clock.advance(minutes=25)  # the db window ends: escalation restarts from level 0
    assert (quiet, 0) in {(d.alert_id, d.level) for d in rig.step()}


def test_weekly_window_from_the_config(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CRON_TOKEN", CRON)
    weekly = {
        "name": "monday-patching",
        "match": {"service": "payments"},
        "days": ["monday"],
        "from": "13:30",  # T0 is Monday 2026-03-02 19:00 UTC = 14:00 in New York
        "duration": "1h",
        "timezone": "America/New_York",
    }
    rig = Rig(
        database_url,
        config=sources_config(integrations=[], maintenance=[weekly]),
        heartbeats=False,
    )
    try:
        (held_id,) = rig.fire(payments("p1")).suppressed
        with transaction(rig.factory) as session:
            row = session.get(SuppressionRow, held_id)
            assert row is not None
            assert (row.window, row.until) == ("config:monday-patching", T0 + timedelta(minutes=30))
        assert rig.step() == []
        rig.clock.advance(minutes=30)
        assert {(d.alert_id, d.level) for d in rig.step()} == {(held_id, 0)}
    finally:
        rig.close()


def test_bad_maintenance_requests_write_nothing(rig: Rig, client: TestClient) -> None:
    cases = [
        {"match": {"service": "x"}, "reason": "r", "by": "erin"},  # neither for nor until
        {"match": {"service": "x"}, "for": "1h", "until": "2026-03-02T21:00:00Z", "reason": "r",
         "by": "erin"},
        {"match": {}, "for": "1h", "reason": "r", "by": "erin"},
        {"match_re": {"service": "("}, "for": "1h", "reason": "r", "by": "erin"},
        {"match": {"service": "x"}, "for": "1h", "reason": "r", "by": "nobody"},
        {"match": {"service": "x"}, "until": "2020-01-01T00:00:00Z", "reason": "r", "by": "erin"},
        {"match": {"service": "x"}, "for": "1h", "reason": "", "by": "erin"},
    ]  # fmt: skip
    for body in cases:
        response = client.post("/api/v1/maintenance", json=body, headers=API_AUTH)
        assert response.status_code == 422, (body, response.text)
    ok = {"match": {"service": "x"}, "for": "1h", "reason": "r", "by": "erin"}
    assert client.post("/api/v1/maintenance", json=ok).status_code == 401
    assert count_rows(rig.factory, MaintenanceRow) == 0


# PagerDuty Events API v2 ------------------------------------------------------------------


def enqueue(client: TestClient, body: Any, path: str = "/v2/enqueue") -> Any:
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, content=raw, headers={"Content-Type": "application/json"})


def pd_trigger(key: str = GRAFANA, **extra: Any) -> dict[str, Any]:
    return {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {"summary": "ledger p99 over 2s", "source": "ledger-1", "severity": "critical"},
        **extra,
    }


def test_events_v2_trigger_acknowledge_resolve(rig: Rig, client: TestClient) -> None:
    answer = enqueue(client, pd_trigger(dedup_key="ledger-latency"))
    assert answer.status_code == 202
    assert answer.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "ledger-latency",
    }
    (alert,) = alert_rows(rig.factory)
    assert alert.policy_name == "critical"
    assert alert.labels["service"] == "ledger" and alert.labels["integration"] == "grafana"
    assert [d.level for d in rig.step()] and outbox_rows(rig.factory, alert.id)
    # The same key again updates the open alert (PagerDuty: same incident).
    again = pd_trigger(dedup_key="ledger-latency")
    again["payload"]["summary"] = "ledger p99 over 3s"
    assert enqueue(client, again).status_code == 202
    (alert,) = alert_rows(rig.factory)
    assert alert.annotations["summary"] == "ledger p99 over 3s"
    ack = {"routing_key": GRAFANA, "event_action": "acknowledge", "dedup_key": "ledger-latency"}
    assert enqueue(client, ack).json()["dedup_key"] == "ledger-latency"
    (alert,) = alert_rows(rig.factory)
    assert (alert.status, alert.acked_by, alert.ack_via) == (
        "acknowledged",
        "grafana (events v2)",
        "events_v2",
    )
    resolve = {**ack, "event_action": "resolve"}
    assert enqueue(client, resolve).status_code == 202
    assert enqueue(client, resolve).status_code == 202  # again: nothing left to do, still 202
    (alert,) = alert_rows(rig.factory)
    assert (alert.status, alert.resolved_via) == ("resolved", "events_v2")
    # A trigger after the resolve is a new alert, as PagerDuty opens a new incident.
    assert enqueue(client, pd_trigger(dedup_key="ledger-latency")).status_code == 202
    assert [a.status for a in alert_rows(rig.factory)] == ["resolved", "triggered"]


def test_events_v2_generates_the_dedup_key_and_keeps_integrations_apart(
    rig: Rig, client: TestClient
) -> None:
    first = enqueue(client, pd_trigger()).json()["dedup_key"]
    second = enqueue(client, pd_trigger()).json()["dedup_key"]
    assert first != second and len(first) == 32
    assert len(alert_rows(rig.factory)) == 2
    # Another integration with the same key is another alert, on its own policy.
    enqueue(client, pd_trigger(dedup_key=first))
    enqueue(client, pd_trigger(SENTRY, dedup_key=first))
    rows = alert_rows(rig.factory)
    assert len(rows) == 3
    assert rows[-1].policy_name == "info" and rows[-1].labels["integration"] == "sentry"


def test_events_v2_bad_bodies_get_pagerduty_400s_and_write_nothing(
    rig: Rig, client: TestClient
) -> None:
    bad: list[Any] = [
        "{not json",
        "[]",
        pd_trigger(key="0" * 32),  # nobody's key
        {**pd_trigger(), "event_action": "explode"},
        {**pd_trigger(), "payload": {"summary": "", "source": "x", "severity": "critical"}},
        {**pd_trigger(), "payload": {"summary": "s", "source": "x", "severity": "fatal"}},
        {"routing_key": GRAFANA, "event_action": "resolve"},
        {**pd_trigger(), "dedup_key": "k" * 300},
    ]
    for body in bad:
        answer = enqueue(client, body)
        assert answer.status_code == 400, (body, answer.text)
        shape = answer.json()
        assert shape["status"] == "invalid event" and shape["message"] == "Event object is invalid"
        assert isinstance(shape["errors"], list) and shape["errors"]
    for body in ("{", {"routing_key": GRAFANA, "payload": {"summary": ""}}):
        answer = enqueue(client, body, "/v2/change/enqueue")
        assert answer.status_code == 400 and answer.json()["status"] == "invalid event"
    for table in (AlertRow, TimelineRow, OutboxRow, ChangeEventRow):
        assert count_rows(rig.factory, table) == 0


def test_events_v2_rate_limit_answers_429(rig: Rig, client: TestClient) -> None:
    codes = [enqueue(client, pd_trigger(SENTRY, dedup_key=f"k{i}")).status_code for i in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    throttled = enqueue(client, pd_trigger(SENTRY)).json()
    assert throttled["status"] == "throttle event"
    assert enqueue(client, pd_trigger()).status_code == 202  # per routing key
    assert len(alert_rows(rig.factory)) == 4


def test_change_events_note_the_alerts_open_at_the_time(rig: Rig, client: TestClient) -> None:
    (open_id,) = webhook(client, am_alert("o1"))["opened"]
    (closed_id,) = webhook(client, am_alert("c1"))["opened"]
    gone = am_alert("c1", status="resolved")
    gone["endsAt"] = rig.clock.now().isoformat()
    webhook(client, gone)
    change = {
        "routing_key": GRAFANA,
        "payload": {"summary": "deploy ledger v42", "source": "github-actions"},
        "links": [{"href": "https://ci.example/run/42", "text": "run"}],
    }
    answer = enqueue(client, change, "/v2/change/enqueue")
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Change event processed"}
    notes = [e for e in timeline(rig.factory, open_id, False) if e.kind == "change"]
    assert [n.detail for n in notes] == [
        "change from grafana (github-actions): deploy ledger v42 https://ci.example/run/42"
    ]
    assert not [e for e in timeline(rig.factory, closed_id, False) if e.kind == "change"]
    with transaction(rig.factory) as session:
        (row,) = session.scalars(select(ChangeEventRow))
        assert (row.integration, row.alerts_noted) == ("grafana", 1)


def test_two_replicas_open_one_alert_for_a_missed_heartbeat(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both replicas find the heartbeat overdue at the same moment; one alert, one page."""
    import threading

    monkeypatch.setenv("TEST_CRON_TOKEN", CRON)
    config = sources_config(integrations=[])
    replicas = [Rig(pg_url, config=config, heartbeats=True) for _ in range(2)]
    try:
        replicas[0].daemon.engine.tick()  # the heartbeat is first seen at T0, never beats
        for replica in replicas:
            replica.clock.advance(minutes=6)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def tick(replica: Rig) -> None:
            try:
                barrier.wait(timeout=30)
                replica.daemon.engine.tick()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=tick, args=(r,)) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        (missed,) = missed_alerts(replicas[0], "watchdog")
        pages = outbox_rows(replicas[0].factory, missed.id)
        assert pages and all(p.level == 0 for p in pages)
        # One row per recipient and method: nobody is paged twice for it.
        keys = [(p.recipient, p.method) for p in pages]
        assert len(keys) == len(set(keys))
    finally:
        for replica in replicas:
            replica.close()
