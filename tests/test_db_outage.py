"""PostgreSQL goes away for a while as a real Alertmanager keeps sending alerts.

The test runs its own PostgreSQL cluster (stopping the machine's shared one would break
every other test) and a real Alertmanager delivering to a real `escalator serve`. While
the database is down the webhook must answer 503, so Alertmanager keeps the notification
and retries (it drops on 4xx); /readyz must say 503 so a load balancer stops routing; and
the engine must wait rather than die. After the restart nothing may be lost: every alert
Alertmanager was given is stored and escalates through every level.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from escalator.engine.runner import wait_until
from tests.support.alertmanager import Alertmanager
from tests.support.payloads import storm_body, storm_config
from tests.support.pg import PrivatePostgres
from tests.support.ports import free_port
from tests.support.processes import (
    EscalatorProcess,
    clean_env,
    page_counts,
    post_until_accepted,
)
from tests.support.store import read_record

LEVELS = (0, 2, 4)
OUTAGE_SECONDS = 25  # how long the database stays down (the scenario, not an assertion)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(free_port())
    server.start()
    yield server
    server.destroy()


def _am_alert(name: str, index: int, tag: str) -> dict[str, object]:
    return {
        "labels": {"alertname": name, "severity": "warning", "index": str(index), "run": tag},
        "annotations": {"summary": f"{name} {index}"},
        "generatorURL": "http://prometheus.credlink.internal:9090/graph",
    }


def _status(url: str, path: str, token: str, body: dict[str, object] | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if body is None:
            return httpx.get(f"{url}{path}", headers=headers, timeout=10).status_code
        return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def test_postgres_outage_loses_nothing(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    token = secrets.token_urlsafe(16)
    env_name = "ESCALATOR_OUTAGE_TEST_TOKEN"
    config = storm_config(tmp_path / "escalator.yaml", LEVELS, token_env=env_name)
    daemon = EscalatorProcess(
        tmp_path, config, private_pg.url, free_port(), clean_env(**{env_name: token}),
        name="daemon", log_level="warning",
    )
    (tmp_path / "am").mkdir()
    am = Alertmanager(tmp_path / "am", free_port(), f"{daemon.url}/webhooks/alertmanager", token)
    tag = uuid.uuid4().hex[:8]
    last = len(LEVELS) - 1
    try:
        daemon.start()
        daemon.wait_ready()
        am.start()

        # Before: a group delivered normally.
        am.post_alerts([_am_alert("OutageBefore", i, tag) for i in range(10)])
        assert wait_until(lambda: len(read_record(private_pg.url, last).alerts) == 10, 60)

        private_pg.stop("fast")  # every connection cut, as in a failover
        down_since = time.monotonic()

        # The webhook answers 503 (retryable), never 2xx and never 4xx, for a valid body.
        own = storm_body(tag, range(5))
        answers: list[int] = []

        def refused() -> bool:
            answers.append(_status(daemon.url, "/webhooks/alertmanager", token, own))
            return answers[-1] == 503

        assert wait_until(refused, 30, poll=0.5), answers
        assert all(code in (0, 503) for code in answers), answers
        assert wait_until(lambda: _status(daemon.url, "/readyz", token) == 503, 30, poll=0.5)

        # During: new alerts, in a new group and added to the existing one.
        am.post_alerts([_am_alert("OutageDuring", i, tag) for i in range(10)])
        am.post_alerts([_am_alert("OutageBefore", i, tag) for i in range(10, 15)])
        assert wait_until(
            lambda: am.metric("alertmanager_notifications_failed_total", integration="webhook")
            > 0,
            60,
            poll=0.5,
        ), "Alertmanager never tried to deliver during the outage"
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
        assert daemon.alive(), f"the daemon died with its database:\n{daemon.stderr()}"
        assert _status(daemon.url, "/healthz", token) == 200  # alive, just not ready

        private_pg.start()
        assert wait_until(lambda: _status(daemon.url, "/readyz", token) == 200, 60, poll=0.5)
        with httpx.Client(timeout=10) as client:  # our own post, retried as Alertmanager does
            post_until_accepted(client, [daemon.url], own, token=token)

        total = 10 + 5 + 10 + 5

        def settled() -> bool:
            record = read_record(private_pg.url, last)
            return (
                len(record.alerts) == total
                and record.finished == total
                and record.outbox_status.get("pending", 0) == 0
                and record.outbox_status.get("sending", 0) == 0
            )

        assert wait_until(settled, 120, poll=1.0), (
            f"{read_record(private_pg.url, last)}\n{daemon.stderr()}"
        )
        record = read_record(private_pg.url, last)
        assert all(n == 1 for n in record.alerts.values())
        ids = {a for a, _ in record.paged}
        expected = {(a, lvl) for a in ids for lvl in range(len(LEVELS))}
        assert len(ids) == total
        assert set(record.paged) == expected and max(record.paged.values()) == 1
        assert record.outbox_status == {"sent": total * len(LEVELS)}
        printed = page_counts([daemon])
        assert set(printed) == expected
        # A send whose commit hit the outage is sent again when its lease ends: one, at most.
        assert sum(printed.values()) - len(printed) <= 1
        # Alertmanager's failed attempts were retried until delivered, not dropped.
        assert am.metric("alertmanager_notifications_total", integration="webhook") > am.metric(
            "alertmanager_notifications_failed_total", integration="webhook"
        )
    finally:
        am.stop()
        daemon.stop()
