"""The daemon's HTTP side over a real store: Alertmanager's webhook, health, metrics, API.

The app is the one `escalator serve` runs (create_app over build_daemon), with the engine
not started: what a post writes is read back from the database, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from escalator.daemon import build_daemon
from escalator.store.db import head_revision, make_engine
from escalator.store.tables import AlertRow, OutboxRow, PolicyRow, TimelineRow
from escalator.web import auth as web_auth
from escalator.web import webhooks as web_webhooks
from escalator.web.app import create_app
from tests.support.helpers import (
    ESCALATION_KINDS,
    T0,
    alert_rows,
    am_alert,
    am_body,
    count_rows,
    outbox_rows,
    shipped_config,
    timeline,
)
from tests.support.ports import free_port
from tests.support.rig import Rig

HOOK = "hook-secret-0123456789"
API = "api-secret-9876543210"
HOOK_AUTH = {"Authorization": f"Bearer {HOOK}"}
API_AUTH = {"Authorization": f"Bearer {API}"}

# Exactly what Alertmanager 0.25 posts for one firing alert (field order, nanosecond
# startsAt, Go's zero time as endsAt, the `{}/{...}:{...}` group key), byte for byte.
AM_025_FIRING = (
    '{"receiver":"escalator","status":"firing","alerts":[{"status":"firing","labels":'
    '{"alertname":"CredLinkAPIDown","instance":"api-1.credlink.internal:8080",'
    '"job":"credlink-api","severity":"critical"},"annotations":{"description":"api-1 has '
    'failed its health check for 1 minute.","runbook_url":'
    '"https://runbooks.credlink.example/api-down","summary":"CredLink API is down"},'
    '"startsAt":"2026-03-02T18:59:47.123456789Z","endsAt":"0001-01-01T00:00:00Z",'
    '"generatorURL":"http://prometheus.credlink.internal:9090/graph?g0.expr=up%7Bjob%3D%22'
    'credlink-api%22%7D+%3D%3D+0\\u0026g0.tab=1","fingerprint":"d9f5ab31c1a7e2b4"}],'
    '"groupLabels":{"alertname":"CredLinkAPIDown"},"commonLabels":{"alertname":'
    '"CredLinkAPIDown","instance":"api-1.credlink.internal:8080","job":"credlink-api",'
    '"severity":"critical"},"commonAnnotations":{"description":"api-1 has failed its health '
    'check for 1 minute.","runbook_url":"https://runbooks.credlink.example/api-down",'
    '"summary":"CredLink API is down"},"externalURL":"http://alertmanager-0.credlink.internal'
    ':9093","version":"4","groupKey":"{}/{severity=~\\"critical|warning\\"}:{alertname='
    '\\"CredLinkAPIDown\\"}","truncatedAlerts":0}\n'
)


@pytest.fixture
def rig(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """A daemon on the shipped config with both tokens set, as production runs it."""
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)
    monkeypatch.setenv("ESCALATOR_API_TOKEN", API)
    made = Rig(database_url)
    yield made
    made.close()


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    with TestClient(create_app(rig.daemon, run_engine=False), client=("10.0.0.7", 40000)) as c:
        yield c


def post(client: TestClient, body: object, headers: dict[str, str] | None = None) -> object:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        "/webhooks/alertmanager",
        content=raw,
        headers={"Content-Type": "application/json", **(headers or HOOK_AUTH)},
    )


def nothing_written(rig: Rig) -> bool:
    tables = (AlertRow, TimelineRow, OutboxRow, PolicyRow)
    return all(count_rows(rig.factory, t) == 0 for t in tables)


# The webhook -----------------------------------------------------------------------------


def test_alertmanager_025_body_opens_an_alert_and_queues_level_zero(
    rig: Rig, client: TestClient
) -> None:
    response = post(client, AM_025_FIRING)
    assert response.status_code == 200, response.text
    answer = response.json()
    (row,) = alert_rows(rig.factory)
    assert answer == {
        "status": "ok",
        "opened": [row.id],
        "updated": 0,
        "resolved": [],
        "unrouted": [],
        "ignored": 0,
        "suppressed": [],
        "heartbeats": [],
    }
    assert row.fingerprint == "d9f5ab31c1a7e2b4"
    assert row.starts_at.isoformat() == "2026-03-02T18:59:47.123456+00:00"
    assert row.ends_at is None  # Go's zero time is "not ended", not year 1
    assert (row.alertname, row.severity, row.policy_name) == (
        "CredLinkAPIDown",
        "critical",
        "critical",
    )
    assert row.labels["instance"] == "api-1.credlink.internal:8080"
    assert row.annotations["summary"] == "CredLink API is down"
    assert row.generator_url is not None and row.generator_url.endswith("&g0.tab=1")
    assert (row.status, row.level, row.opened_at) == ("triggered", 0, T0)
    # Committed before the 2xx: level 0's pages are in the outbox already.
    assert sorted(r.recipient for r in outbox_rows(rig.factory)) == ["alice", "incidents"]


def test_repeats_and_ha_duplicates_are_one_alert(rig: Rig, client: TestClient) -> None:
    assert post(client, AM_025_FIRING).status_code == 200
    again = post(client, AM_025_FIRING)
    peer = AM_025_FIRING.replace("alertmanager-0", "alertmanager-1")  # the HA twin
    twin = post(client, peer)
    assert again.json()["opened"] == [] and again.json()["updated"] == 1
    assert twin.json()["opened"] == [] and twin.json()["updated"] == 1
    assert len(alert_rows(rig.factory)) == 1
    assert len(outbox_rows(rig.factory)) == 2  # level 0 paged once, not three times
    kinds = [t.kind for t in timeline(rig.factory, alert_rows(rig.factory)[0].id)]
    assert kinds.count("opened") == 1 and kinds.count("paged") == 1


def test_the_same_occurrence_twice_in_one_body_is_one_alert(rig: Rig, client: TestClient) -> None:
    response = post(client, am_body(am_alert(), am_alert()))
    assert response.status_code == 200
    assert len(response.json()["opened"]) == 1
    assert len(alert_rows(rig.factory)) == 1


def test_resolved_alert_in_a_firing_group_closes_just_that_one(
    rig: Rig, client: TestClient
) -> None:
    one = am_alert(fingerprint="aaaa000000000001", instance="api-1")
    two = am_alert(fingerprint="aaaa000000000002", instance="api-2")
    opened = post(client, am_body(one, two)).json()["opened"]
    assert len(opened) == 2
    closed = {**one, "status": "resolved", "endsAt": "2026-03-02T19:04:12.000000001Z"}
    answer = post(client, am_body(closed, two)).json()
    assert answer["resolved"] == [opened[0]] and answer["updated"] == 1
    rows = {r.fingerprint: r for r in alert_rows(rig.factory)}
    assert rows["aaaa000000000001"].status == "resolved"
    assert rows["aaaa000000000001"].resolved_by == "alertmanager"
    assert rows["aaaa000000000001"].ends_at is not None
    assert rows["aaaa000000000002"].status == "triggered"
    # Its pending pages are cancelled, the other alert's are untouched.
    statuses = {(r.alert_id, r.status) for r in outbox_rows(rig.factory)}
    assert statuses == {(opened[0], "cancelled"), (opened[1], "pending")}
    # A resolved entry seen again is ignored, not an error.
    assert post(client, am_body(closed, two)).json()["ignored"] == 1


def test_refire_after_resolve_opens_a_new_alert(rig: Rig, client: TestClient) -> None:
    first = post(client, am_body(am_alert())).json()["opened"]
    resolved = am_alert(status="resolved", ends_at="2026-03-02T19:03:00Z")
    assert post(client, am_body(resolved)).json()["resolved"] == first
    refire = am_alert(starts_at="2026-03-02T19:10:47.5Z")
    second = post(client, am_body(refire)).json()["opened"]
    assert len(second) == 1 and second != first
    rows = alert_rows(rig.factory)
    assert [(r.id, r.status) for r in rows] == [(first[0], "resolved"), (second[0], "triggered")]
    assert {r.fingerprint for r in rows} == {"d9f5ab31c1a7e2b4"}


def test_resolved_for_an_alert_never_seen_is_ignored(rig: Rig, client: TestClient) -> None:
    answer = post(client, am_body(am_alert(status="resolved"))).json()
    assert answer["ignored"] == 1
    assert nothing_written(rig)


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        pytest.param('{"version": "4", "alerts": [', 400, "body is not JSON", id="truncated"),
        pytest.param("", 400, "body is not JSON", id="empty"),
        pytest.param(
            json.dumps({**am_body(am_alert()), "version": "3"}),
            422,
            "version: Input should be '4'",
            id="version-3",
        ),
        # A bad entry in a good body (startsAt "soon", an empty fingerprint) is no longer a
        # 422 for the whole body (issue 11): it is refused alone, answered 200 with a
        # `rejected` list and paged as EscalatorIngestRejected (tests/test_ingest_edges.py).
        pytest.param('["not", "an", "object"]', 422, "(body)", id="array"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason_and_write_nothing(
    rig: Rig, client: TestClient, body: str, code: int, reason: str
) -> None:
    response = post(client, body)
    assert response.status_code == code, response.text
    answer = response.json()
    assert reason in answer["error"] + " ".join(answer.get("details", []))
    if code == 422:
        assert answer["error"] == "not an Alertmanager version 4 webhook body"
    assert nothing_written(rig)


def test_body_over_the_limit_is_413(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)
    config = shipped_config()
    small = config.model_copy(
        update={"server": config.server.model_copy(update={"max_body_bytes": 2048})}
    )
    rig = Rig(database_url, config=small)
    try:
        with TestClient(create_app(rig.daemon, run_engine=False)) as client:
            big = json.dumps(am_body(*(am_alert(fingerprint=f"{n:016x}") for n in range(5))))
            assert len(big) > 2048
            declared = post(client, big)
            assert declared.status_code == 413
            assert declared.json()["error"] == "body larger than 2048 bytes"

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
                for start in range(0, len(big), 500):
                    yield big[start : start + 500].encode()

            streamed = client.post("/webhooks/alertmanager", content=chunks(), headers=HOOK_AUTH)
            assert streamed.status_code == 413
            assert post(client, AM_025_FIRING).status_code == 200  # under the limit
        assert len(alert_rows(rig.factory)) == 1
    finally:
        rig.close()


def test_bearer_token(rig: Rig, client: TestClient) -> None:
    assert post(client, AM_025_FIRING, {"X-None": "1"}).status_code == 401
    assert post(client, AM_025_FIRING, {"Authorization": "Bearer wrong"}).status_code == 401
    assert post(client, AM_025_FIRING, {"Authorization": f"Basic {HOOK}"}).status_code == 401
    assert post(client, AM_025_FIRING, API_AUTH).status_code == 401  # the API's token
    assert nothing_written(rig)
    response = post(client, AM_025_FIRING, {"Authorization": f"bearer {HOOK}"})
    assert response.status_code == 200
    assert "hmac.compare_digest" in inspect.getsource(web_auth.authorized)


def test_no_token_accepts_loopback_clients_only(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCALATOR_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("ESCALATOR_API_TOKEN", raising=False)
    rig = Rig(database_url)
    try:
        assert rig.daemon.webhook_token is None
        app = create_app(rig.daemon, run_engine=False)
        with TestClient(app, client=("192.0.2.10", 5000)) as remote:
            refused = post(remote, AM_025_FIRING, {"Authorization": f"Bearer {HOOK}"})
            assert refused.status_code == 401
            assert remote.get("/api/v1/alerts").status_code == 401
        assert nothing_written(rig)
        for host in ("127.0.0.1", "::1"):
            with TestClient(app, client=(host, 5000)) as local:
                assert post(local, AM_025_FIRING, {"X-None": "1"}).status_code == 200
                assert local.get("/api/v1/alerts").status_code == 200
        assert len(alert_rows(rig.factory)) == 1
    finally:
        rig.close()


def test_store_unavailable_is_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL on a port nothing listens on: Alertmanager must get a 5xx and retry."""
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)
    monkeypatch.setenv("ESCALATOR_API_TOKEN", API)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/escalator?connect_timeout=5"
    daemon = build_daemon(shipped_config(), url, migrate=False)
    try:
        with TestClient(create_app(daemon, run_engine=False)) as client:
            response = post(client, AM_025_FIRING)
            assert response.status_code == 503
            assert response.json() == {"error": "store unavailable, retry later"}
            assert client.get("/healthz").status_code == 200  # the process is alive
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"].startswith("not ready")
            assert client.get("/api/v1/alerts", headers=API_AUTH).status_code == 503
            ack = {"ids": [1], "by": "alice"}
            assert client.post("/api/v1/alerts/ack", json=ack, headers=API_AUTH).status_code == 503
            assert client.get("/api/v1/maintenance", headers=API_AUTH).status_code == 503
            end = client.post("/api/v1/maintenance/1/end", json={"by": "alice"}, headers=API_AUTH)
            assert end.status_code == 503
            assert end.json() == {"error": "store unavailable, retry later"}
            assert client.get("/metrics").status_code == 200
    finally:
        daemon.db.dispose()


# Health and metrics -----------------------------------------------------------------------


def test_healthz_readyz_and_metrics(rig: Rig, client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    post(client, AM_025_FIRING)
    post(client, "{")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    body = metrics.text
    assert 'escalator_alerts{status="triggered"} 1.0' in body
    assert 'escalator_alerts{status="resolved"} 0.0' in body
    assert 'escalator_webhook_requests_total{code="200"}' in body
    assert 'escalator_webhook_requests_total{code="400"}' in body
    assert "escalator_engine_tick_seconds" in body


def test_maintenance_api_answers_404_for_an_unknown_window(client: TestClient) -> None:
    end = client.post("/api/v1/maintenance/4242/end", json={"by": "alice"}, headers=API_AUTH)
    assert end.status_code == 404
    assert "4242" in end.json()["error"]
    assert client.get("/api/v1/maintenance", headers=API_AUTH).json() == []


def test_each_daemon_counts_on_its_own_registry(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metrics belong to the daemon that counted them, not to the process: a second daemon
    in the same process starts from zero and is not moved by the first one's posts."""
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)
    monkeypatch.setenv("ESCALATOR_API_TOKEN", API)
    first = Rig(sqlite_url)
    second = Rig(f"sqlite:///{tmp_path / 'second.db'}")
    try:
        with (
            TestClient(create_app(first.daemon, run_engine=False)) as one,
            TestClient(create_app(second.daemon, run_engine=False)) as two,
        ):
            for _ in range(3):
                assert post(one, AM_025_FIRING).status_code == 200
            counted = 'escalator_webhook_requests_total{code="200"} 3.0'
            assert counted in one.get("/metrics").text
            assert 'escalator_webhook_requests_total{code="200"}' not in two.get("/metrics").text
            assert "process_cpu_seconds_total" in two.get("/metrics").text
    finally:
        first.close()
        second.close()


def test_readyz_is_503_until_the_schema_is_current(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        daemon = build_daemon(shipped_config(), database_url, migrate=False)  # empty file
        restore = None
    else:
        daemon = build_daemon(shipped_config(), database_url)
        restore = head_revision()
        with daemon.db.begin() as conn:  # as if a newer release had not migrated yet
            conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        with TestClient(create_app(daemon, run_engine=False)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "escalator db upgrade" in ready.json()["error"]
            assert client.get("/healthz").status_code == 200
    finally:
        if restore is not None:
            with daemon.db.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": restore})
        daemon.db.dispose()
    fixed = make_engine(database_url)
    try:
        from escalator.store.db import upgrade

        upgrade(fixed)
        daemon = build_daemon(shipped_config(), database_url, migrate=False)
        with TestClient(create_app(daemon, run_engine=False)) as client:
            assert client.get("/readyz").status_code == 200
        daemon.db.dispose()
    finally:
        fixed.dispose()


# The API the CLI uses with --server ---------------------------------------------------


def test_api_list_show_ack_resolve_oncall(rig: Rig, client: TestClient) -> None:
    assert client.get("/api/v1/alerts").status_code == 401
    assert client.get("/api/v1/alerts", headers=HOOK_AUTH).status_code == 401
    one = am_alert(fingerprint="bbbb000000000001", instance="api-1")
    two = am_alert(fingerprint="bbbb000000000002", instance="api-2")
    first, second = post(client, am_body(one, two)).json()["opened"]

    listed = client.get("/api/v1/alerts", headers=API_AUTH).json()
    assert [(a["id"], a["status"], a["level"]) for a in listed] == [
        (second, "triggered", 0),
        (first, "triggered", 0),
    ]
    assert listed[0]["next_action_at"] == "2026-03-02T19:05:00Z"

    shown = client.get(f"/api/v1/alerts/{first}", headers=API_AUTH).json()
    kinds = [t["kind"] for t in shown["timeline"] if t["kind"] in ESCALATION_KINDS]
    assert kinds == ["opened", "paged"]
    pages = [n for n in shown["notifications"] if n["level"] is not None]
    assert {(n["recipient"], n["level"], n["status"]) for n in pages} == {
        ("alice", 0, "pending"),
        ("incidents", 0, "pending"),
    }
    assert client.get("/api/v1/alerts/424242", headers=API_AUTH).status_code == 404

    unknown = client.post(
        "/api/v1/alerts/ack", json={"ids": [first], "by": "mallory"}, headers=API_AUTH
    )
    assert unknown.status_code == 422 and "unknown person 'mallory'" in unknown.json()["error"]
    empty = client.post("/api/v1/alerts/ack", json={"by": "alice"}, headers=API_AUTH)
    assert empty.status_code == 422
    assert {r.status for r in alert_rows(rig.factory)} == {"triggered"}

    acked = client.post(
        "/api/v1/alerts/ack", json={"ids": [first], "by": "alice"}, headers=API_AUTH
    )
    assert acked.status_code == 200
    assert acked.json() == [
        {
            "alert_id": first,
            "changed": True,
            "message": "acknowledged by alice via api",
            "status": "acknowledged",
        }
    ]
    again = client.post("/api/v1/alerts/ack", json={"all": True, "by": "bob"}, headers=API_AUTH)
    assert [(o["alert_id"], o["changed"]) for o in again.json()] == [(second, True)]

    # An id no alert has: above every id this database has handed out (PostgreSQL's
    # sequences keep counting across the run's tests, so a fixed 999 may be taken).
    missing = max(first, second) + 1_000_000
    resolved = client.post(
        "/api/v1/alerts/resolve", json={"ids": [missing, first], "by": "bob"}, headers=API_AUTH
    ).json()
    assert [(o["alert_id"], o["status"]) for o in resolved] == [
        (first, "resolved"),
        (missing, "unknown"),
    ]
    assert [a["id"] for a in client.get("/api/v1/alerts", headers=API_AUTH).json()] == [second]
    everything = client.get("/api/v1/alerts?all=true", headers=API_AUTH).json()
    assert {a["id"]: a["status"] for a in everything} == {
        first: "resolved",
        second: "acknowledged",
    }
    rows = {r.id: r for r in alert_rows(rig.factory)}
    assert (rows[first].acked_by, rows[first].ack_via) == ("alice", "api")
    assert (rows[first].resolved_by, rows[first].resolved_via) == ("bob", "api")
    assert rows[second].acked_by == "bob"

    oncall = client.get("/api/v1/oncall", headers=API_AUTH).json()
    by_name = {r["name"]: r["people"] for r in oncall}
    assert by_name["primary"] == ["alice"]  # the FixedClock's Monday 19:00 UTC
    assert by_name["engineering_lead"] == ["erin"]
    assert by_name["devops"] == ["dave", "dana"]
    later = client.get(
        "/api/v1/oncall", params={"at": "2026-03-09T15:00:00Z"}, headers=API_AUTH
    ).json()
    assert {r["name"]: r["people"] for r in later}["primary"] == ["bob"]


# Repeats of what is already committed ---------------------------------------------------


def test_committed_repeat_is_answered_without_a_transaction(
    rig: Rig, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alertmanager re-sends each group every group_interval: once a body's content is
    durable, its repeat is answered from memory (and still answered with the store down)."""
    assert post(client, AM_025_FIRING).json()["opened"]
    rows_before = (len(alert_rows(rig.factory)), len(outbox_rows(rig.factory)))

    def no_store(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a committed repeat must not open a transaction")

    monkeypatch.setattr(web_webhooks, "transaction", no_store)
    again = post(client, AM_025_FIRING)
    assert again.status_code == 200
    assert again.json()["updated"] == 1 and again.json()["opened"] == []
    assert (len(alert_rows(rig.factory)), len(outbox_rows(rig.factory))) == rows_before


def test_a_changed_repeat_or_a_resolve_still_reaches_the_store(
    rig: Rig, client: TestClient
) -> None:
    first = am_alert("c0ffee0000000001")
    assert post(client, am_body(first)).json()["opened"]
    changed = {**first, "annotations": {**first["annotations"], "summary": "now worse"}}
    assert post(client, am_body(changed)).json()["updated"] == 1
    (row,) = alert_rows(rig.factory)
    assert row.annotations["summary"] == "now worse"  # the new content was written
    resolved = {**changed, "status": "resolved", "endsAt": "2026-03-02T19:30:00Z"}
    assert post(client, am_body(resolved)).json()["resolved"] == [row.id]
    # After the resolve the occurrence is forgotten: a late firing repeat (an HA peer)
    # goes to the store, which keeps the alert resolved.
    late = post(client, am_body(changed)).json()
    assert late["opened"] == [] and late["updated"] == 1
    assert alert_rows(rig.factory)[0].status == "resolved"
