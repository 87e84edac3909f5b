"""Ingest at its edges (issue 11), on SQLite and PostgreSQL through the real HTTP app.

- HA duplicates: three replicas (three daemons on one database) take concurrent posts of
  the same and overlapping groups in different orders; none may deadlock or fail.
- One post of 7,500 alerts: answered 200 (PostgreSQL once hit its parser stack limit).
- A severity label longer than any former column length is stored alike on both backends.
- A body with entries that cannot be stored: the others are stored, the answer is 200
  with a `rejected` list, and each refused entry is an EscalatorIngestRejected alert that
  pages; a resend does not open it again.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from escalator.config import Config
from escalator.ingest.rejections import REJECTED_ALERTNAME, SEVERITY_MAX_CHARS
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, IncidentRow, OutboxRow, TimelineRow
from escalator.web.app import create_app
from tests.support.helpers import (
    alert_rows,
    am_alert,
    am_body,
    count_rows,
    outbox_rows,
    shipped_config,
)
from tests.support.rig import Rig

HOOK = "hook-secret-0123456789"
AUTH = {"Authorization": f"Bearer {HOOK}", "Content-Type": "application/json"}


def _config(max_body_bytes: int = 1 << 20) -> Config:
    config = shipped_config()
    server = config.server.model_copy(update={"max_body_bytes": max_body_bytes})
    return config.model_copy(update={"server": server})


@pytest.fixture
def hook_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)


@pytest.fixture
def rig(database_url: str, hook_token: None) -> Iterator[Rig]:
    made = Rig(database_url, config=_config(32 << 20))
    yield made
    made.close()


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    with TestClient(create_app(rig.daemon, run_engine=False)) as c:
        yield c


def post(client: TestClient, body: object) -> Any:
    return client.post("/webhooks/alertmanager", content=json.dumps(body), headers=AUTH)


def fp(n: int) -> str:
    return f"{n:016x}"


# HA duplicates -------------------------------------------------------------------------------


def test_concurrent_ha_posts_of_overlapping_groups_never_deadlock(
    database_url: str, hook_token: None
) -> None:
    """Three replicas, two posting threads each, 12 bodies per thread: random slices of 60
    alerts in random order, half of them with changed annotations (so the repeat cache of
    each replica misses and every post takes the database path)."""
    rigs = [Rig(database_url, config=_config()) for _ in range(3)]
    clients = [TestClient(create_app(r.daemon, run_engine=False)) for r in rigs]
    for c in clients:
        c.__enter__()
    answers: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def poster(seed: int, c: TestClient) -> None:
        rnd = random.Random(seed)
        for round_ in range(12):
            picked = rnd.sample(range(60), rnd.randint(20, 60))
            alerts = []
            for n in picked:
                alert = am_alert(fingerprint=fp(n), severity="critical" if n % 2 else "warning")
                if rnd.random() < 0.5:
                    alert["annotations"]["summary"] = f"round {round_} from {seed}"
                alerts.append(alert)
            response = post(c, am_body(*alerts))
            with lock:
                answers.append(response.status_code)
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=poster, args=(i, clients[i % 3])) for i in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        assert errors == [], errors[:3]
        assert answers == [200] * 72
        rows = alert_rows(rigs[0].factory)
        fingerprints = [r.fingerprint for r in rows]
        assert len(fingerprints) == len(set(fingerprints))  # one alert per fingerprint
        assert set(fingerprints) <= {fp(n) for n in range(60)}
        assert len(rows) == 60  # every fingerprint was in some body (seeds fixed)
        # Every alert opened exactly once: one `opened` entry on each timeline.
        with transaction(rigs[0].factory) as session:
            opened = list(
                session.execute(
                    select(TimelineRow.alert_id, func.count())
                    .where(TimelineRow.kind == "opened")
                    .group_by(TimelineRow.alert_id)
                )
            )
        assert sorted(opened) == sorted((r.id, 1) for r in rows)
    finally:
        for c in clients:
            c.__exit__(None, None, None)
        for r in rigs:
            r.close()


# One huge post -----------------------------------------------------------------------------


def test_a_post_of_7500_alerts_is_answered_200(rig: Rig, client: TestClient) -> None:
    alerts = [am_alert(fingerprint=fp(n), severity="warning") for n in range(7500)]
    response = post(client, am_body(*alerts))
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["opened"]) == 7500
    assert count_rows(rig.factory, AlertRow) == 7500
    # The same body again (a resend) is all repeats, and still one query's worth of keys.
    rig.daemon.committed = type(rig.daemon.committed)()  # a cold replica: no repeat cache
    again = post(client, am_body(*alerts))
    assert again.status_code == 200, again.text[:500]
    assert again.json()["updated"] == 7500 and again.json()["opened"] == []


# Column lengths ----------------------------------------------------------------------------


def test_a_long_severity_label_is_stored_alike_on_both_backends(
    rig: Rig, client: TestClient
) -> None:
    severity = "critical-" + "x" * (SEVERITY_MAX_CHARS - 9)  # 200 characters, was 50 max
    name = "A" * 300  # the alertname column was 200 characters
    alert = am_alert(fingerprint=fp(1), severity=severity, alertname=name)
    response = post(client, am_body(alert, am_alert(fingerprint=fp(2))))
    assert response.status_code == 200, response.text
    assert len(response.json()["opened"]) == 2
    rows = {r.fingerprint: r for r in alert_rows(rig.factory)}
    assert rows[fp(1)].severity == severity
    assert rows[fp(1)].alertname == name
    assert rows[fp(2)].severity == "critical"


# Refused entries ---------------------------------------------------------------------------


def _rejections(rig: Rig) -> list[AlertRow]:
    return [r for r in alert_rows(rig.factory) if r.alertname == REJECTED_ALERTNAME]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param({"startsAt": "soon"}, "startsAt", id="startsAt-unreadable"),
        pytest.param(
            {"startsAt": "0001-01-01T00:00:00+05:00"}, "greater than", id="startsAt-range"
        ),
        pytest.param({"startsAt": "10000-01-01T00:00:00Z"}, "startsAt", id="startsAt-year-10000"),
        pytest.param(
            {"startsAt": "9999-12-31T23:00:00-05:00"}, "less than", id="startsAt-past-9999"
        ),
        pytest.param({"startsAt": "2026-03-02T18:59:47"}, "timezone", id="startsAt-naive"),
        pytest.param({"fingerprint": ""}, "fingerprint", id="empty-fingerprint"),
        pytest.param({"fingerprint": None}, "fingerprint", id="missing-fingerprint"),
        pytest.param({"labels": {}}, "labels", id="no-labels"),
        pytest.param({"status": "pending"}, "status", id="unknown-status"),
        pytest.param(
            {"labels": {"alertname": "X", "severity": "s" * (SEVERITY_MAX_CHARS + 1)}},
            "labels.severity: longer than",
            id="severity-too-long",
        ),
    ],
)
def test_an_entry_that_cannot_be_stored_is_refused_alone_and_paged(
    rig: Rig, client: TestClient, bad: dict[str, Any], reason: str
) -> None:
    good = am_alert(fingerprint=fp(1))
    refused = {**am_alert(fingerprint=fp(2), severity="warning"), **bad}
    body = am_body(good, refused)
    response = post(client, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["opened"]) == 2  # the good alert and the rejection event
    (rejected,) = answer["rejected"]
    assert rejected["index"] == 1 and reason in rejected["reason"]
    rows = {r.fingerprint: r for r in alert_rows(rig.factory)}
    assert rows[fp(1)].alertname == "CredLinkAPIDown"
    (event,) = _rejections(rig)
    assert event.fingerprint == rejected["rejection"]
    assert reason in event.annotations["description"]
    assert event.status == "triggered"
    # It pages like any alert of its severity: level 0 is in the outbox at the 2xx.
    assert [p.level for p in outbox_rows(rig.factory, event.id)] != []
    # Alertmanager resends the group: the same rejection, not a second one, still 200.
    rig.daemon.committed = type(rig.daemon.committed)()
    resend = post(client, body)
    assert resend.status_code == 200
    assert resend.json()["opened"] == [] and len(resend.json()["rejected"]) == 1
    assert len(_rejections(rig)) == 1


def test_a_refused_warning_pages_as_a_warning_and_an_unreadable_one_as_critical(
    rig: Rig, client: TestClient
) -> None:
    warning = {**am_alert(fingerprint=fp(1), severity="warning"), "startsAt": "soon"}
    unreadable = {"status": "firing", "labels": "not a mapping", "fingerprint": fp(2)}
    body = am_body(am_alert(fingerprint=fp(3)), warning)
    body["alerts"].append(unreadable)
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert len(response.json()["rejected"]) == 2
    by_refused = {r.annotations["refused_fingerprint"]: r for r in _rejections(rig)}
    assert by_refused[fp(1)].severity == "warning"
    assert by_refused[fp(1)].policy_name == "warning"
    assert by_refused[fp(2)].severity == "critical"
    assert by_refused[fp(2)].policy_name == "critical"
    with transaction(rig.factory) as session:  # a critical rejection is an incident too
        incidents = session.scalar(select(func.count()).select_from(IncidentRow))
        pages = session.scalar(select(func.count()).select_from(OutboxRow))
    assert incidents == 2  # the good critical alert and the unreadable entry
    assert pages and pages > 0


def test_a_body_whose_every_entry_is_refused_is_still_200(rig: Rig, client: TestClient) -> None:
    body = am_body({**am_alert(fingerprint=fp(1)), "startsAt": "soon"})
    response = post(client, body)
    assert response.status_code == 200, response.text
    assert len(_rejections(rig)) == 1
    assert [r.alertname for r in alert_rows(rig.factory)] == [REJECTED_ALERTNAME]


def test_a_body_that_is_not_version_4_is_still_refused_whole(rig: Rig, client: TestClient) -> None:
    response = post(client, {**am_body(am_alert()), "version": "3"})
    assert response.status_code == 422
    assert alert_rows(rig.factory) == []


def test_bulk_insert_leaves_out_empty_columns_only_where_null_is_what_they_get(
    database_url: str,
) -> None:
    """insert_rows drops a column NULL in every row (fewer bound values), unless the table
    would fill it with a default of its own: then the NULL is written."""
    from uuid import uuid4

    from sqlalchemy import Column, Integer, MetaData, Table, Text, text

    from escalator.ingest.bulk import insert_rows
    from escalator.store.db import make_engine, session_factory

    engine = make_engine(database_url)
    table = Table(
        f"bulk_{uuid4().hex[:8]}",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("plain", Text),
        Column("filled", Text, server_default=text("'from the table'")),
    )
    table.create(engine)
    try:
        with transaction(session_factory(engine)) as session:
            rows = [{"id": i, "plain": None, "filled": None} for i in (1, 2)]
            insert_rows(session, table, rows)
            insert_rows(session, table, [{"id": 3, "plain": "x"}])
        with engine.connect() as conn:
            stored = conn.execute(select(table).order_by(table.c.id)).all()
        assert [tuple(r) for r in stored] == [
            (1, None, None),
            (2, None, None),
            (3, "x", "from the table"),
        ]
    finally:
        table.drop(engine)
        engine.dispose()
