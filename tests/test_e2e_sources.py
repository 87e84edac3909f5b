"""End to end: heartbeats, maintenance windows and PagerDuty Events v2 through the real
`escalator serve`, a real Alertmanager running the shipped config/alertmanager.yml (its
Watchdog route included, waits shrunk) and PagerDuty's own Python client.

Time is compressed (policies in seconds, a Watchdog heartbeat of seconds); every wait
polls with a generous timeout, and what is asserted is what the daemon recorded (which
alert, which level, which occurrence), never how long anything took.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pagerduty import EventsApiV2Client

from escalator.config import load_config
from tests.fakes.smtp_sink import self_signed_cert
from tests.support.alertmanager import shipped_alertmanager_config, start_alertmanager
from tests.support.e2e import (
    Stack,
    compressed_config,
    iso,
)
from tests.support.ports import free_port
from tests.support.processes import (
    ManagedProcess,
    clean_env,
    start_escalator,
)

CRON_TOKEN = secrets.token_hex(16)
GRAFANA_KEY = secrets.token_hex(16)  # 32 characters, like a PagerDuty routing key


def _config(tmp_path: Path, heartbeats: bool = True) -> Path:
    """The shipped config, compressed, with the shipped Watchdog heartbeat in seconds, a
    cron-style heartbeat and a PagerDuty integration (without heartbeats: for tests with
    nothing to feed them, which would otherwise see them go missing)."""
    path = tmp_path / "escalator.yaml"
    compressed_config(path)
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    (watchdog,) = data["heartbeats"]
    # The shipped 1m + 4m, shrunk; Alertmanager re-sends the Watchdog about every second.
    watchdog.update(interval="3s", grace="5s")
    data["heartbeats"].append(
        {
            "name": "nightly-backup",
            "interval": "6s",
            "grace": "4s",
            "severity": "critical",
            "token": {"env": "E2E_CRON_TOKEN"},
        }
    )
    if not heartbeats:
        data["heartbeats"] = []
    data["integrations"] = [
        {"name": "grafana", "key": {"env": "E2E_GRAFANA_KEY"}, "labels": {"service": "ledger"}}
    ]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    started: list[ManagedProcess] = []

    def make(
        database_url: str, tls: bool = False, alertmanager: bool = True, heartbeats: bool = True
    ) -> Stack:
        config_path = _config(tmp_path, heartbeats)
        webhook_token, api_token = secrets.token_hex(16), secrets.token_hex(16)
        env = clean_env(
            ESCALATOR_WEBHOOK_TOKEN=webhook_token,
            ESCALATOR_API_TOKEN=api_token,
            E2E_CRON_TOKEN=CRON_TOKEN,
            E2E_GRAFANA_KEY=GRAFANA_KEY,
        )
        port = free_port()
        cert = self_signed_cert(tmp_path) if tls else None
        escalator = start_escalator(tmp_path, config_path, database_url, port, env, tls=cert)
        started.append(escalator)
        processes = [escalator]
        am = escalator  # placeholder when the test needs no Alertmanager
        if alertmanager:
            am_config = tmp_path / "alertmanager.yml"
            shipped_alertmanager_config(am_config, port, webhook_token)
            am = start_alertmanager(tmp_path, am_config, free_port())
            started.append(am)
            processes.append(am)
        return Stack(
            workdir=tmp_path,
            config_path=config_path,
            config=load_config(config_path),
            database_url=database_url,
            webhook_token=webhook_token,
            api_token=api_token,
            escalator=escalator,
            alertmanager=am,
            processes=processes,
        )

    try:
        yield make
    finally:
        for process in reversed(started):
            if process.alive():
                os.kill(process.pid, signal.SIGCONT)  # a stopped process cannot exit
            process.stop()


def _heartbeats(stack: Stack) -> dict[str, dict[str, Any]]:
    listed = stack.cli_json("heartbeat", "list")
    return {h["name"]: h for h in listed}


def _polled_heartbeats(stack: Stack) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in stack.api("/api/v1/heartbeats")}


def _missed(stack: Stack, heartbeat: str) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.polled_alerts()
        if a["alertname"] == "HeartbeatMissed" and a["labels"].get("heartbeat") == heartbeat
    ]


def _watchdog(stack: Stack) -> None:
    """What Prometheus does with the shipped Watchdog rule: an always-firing alert."""
    stack.post_alert(
        {"alertname": "Watchdog", "severity": "none"},
        datetime.now(UTC) - timedelta(seconds=1),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
        summary="Always firing, so its absence can be noticed",
    )


def test_stopped_alertmanager_pages_heartbeat_missed_and_its_return_resolves(
    make_stack: Callable[..., Stack], sqlite_url: str
) -> None:
    stack = make_stack(sqlite_url)
    heartbeat = stack.config.heartbeat("watchdog")
    assert heartbeat is not None
    with stack.dump_logs_on_failure():
        _watchdog(stack)
        stack.wait_for(
            "Alertmanager's Watchdog to beat the heartbeat a few times",
            lambda: _polled_heartbeats(stack)["watchdog"]["beats"] >= 3,
        )
        assert _heartbeats(stack)["watchdog"]["state"] == "ok"  # escalator heartbeat list
        assert _missed(stack, "watchdog") == []

        os.kill(stack.alertmanager.pid, signal.SIGSTOP)  # Alertmanager hangs
        try:
            (missed,) = stack.wait_for(
                "HeartbeatMissed to open", lambda: _missed(stack, "watchdog")
            )
            alert_id = int(missed["id"])
            stack.wait_for(
                "HeartbeatMissed level 0 pages on escalator's stdout",
                lambda: any(p.level == 0 for p in stack.console_pages(alert_id)),
            )
            listed = _heartbeats(stack)["watchdog"]
            assert (listed["state"], listed["alert_id"]) == ("missed", alert_id)
            # Missed at the deadline: the last beat + interval + grace.
            deadline = iso(listed["last_beat_at"]) + heartbeat.interval + heartbeat.grace
            assert iso(listed["missed_at"]) == deadline
            shown = stack.show(alert_id)
            assert shown["labels"]["severity"] == "critical"
            assert shown["policy"] == "critical"
            assert iso(shown["opened_at"]) >= deadline
        finally:
            os.kill(stack.alertmanager.pid, signal.SIGCONT)

        stack.wait_for(
            "the Watchdog's return to resolve HeartbeatMissed",
            lambda: stack.polled_show(alert_id)["status"] == "resolved",
        )
        final = stack.show(alert_id)
        assert final["resolved_by"] == "heartbeat"
        assert _heartbeats(stack)["watchdog"]["state"] == "ok"
        # The Watchdog itself was never tracked, let alone paged.
        assert not [a for a in stack.alerts() if a["alertname"] == "Watchdog"]


def test_cron_heartbeat_with_curl(make_stack: Callable[..., Stack], pg_url: str) -> None:
    stack = make_stack(pg_url, alertmanager=False)
    curl = shutil.which("curl")
    assert curl, "curl is required (Debian: apt-get install curl)"
    url = f"{stack.escalator.base_url}/heartbeats/nightly-backup"

    def beat(token: str = CRON_TOKEN) -> subprocess.CompletedProcess[str]:
        # Exactly what the README tells a backup script to run.
        return subprocess.run(
            [curl, "-fsS", "-X", "POST", "-H", f"Authorization: Bearer {token}", url],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    with stack.dump_logs_on_failure():
        refused = beat("wrong")
        assert refused.returncode != 0 and "401" in refused.stderr
        done = beat()
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["heartbeat"] == "nightly-backup"
        (missed,) = stack.wait_for(
            "the silent backup to open HeartbeatMissed", lambda: _missed(stack, "nightly-backup")
        )
        alert_id = int(missed["id"])
        stack.wait_for(
            "its level 0 page", lambda: any(p.level == 0 for p in stack.console_pages(alert_id))
        )
        listed = _heartbeats(stack)["nightly-backup"]  # escalator heartbeat list
        assert (listed["state"], listed["alert_id"]) == ("missed", alert_id)
        done = beat()  # the backup ran after all
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["resolved"] == [alert_id]
        shown = stack.show(alert_id)
        assert (shown["status"], shown["resolved_by"]) == ("resolved", "heartbeat")


def test_maintenance_window_holds_pages_through_alertmanager_until_it_ends(
    make_stack: Callable[..., Stack], sqlite_url: str
) -> None:
    stack = make_stack(sqlite_url)
    with stack.dump_logs_on_failure():
        _watchdog(stack)  # keep the heartbeat quiet; this test is about the window
        added = stack.cli(
            "maintenance", "add", "--match", "service=payments", "--for", "40s",
            "--reason", "payments database failover", "--as", "erin", "-o", "json",
            remote=True,
        )  # fmt: skip
        window = yaml.safe_load(added)
        window_end = iso(window["ends_at"])
        listed = stack.cli_json("maintenance", "list")
        assert [(w["id"], w["state"], w["created_by"]) for w in listed] == [
            (window["id"], "active", "erin")
        ]

        fired_at = datetime.now(UTC).replace(microsecond=0)
        held_labels = {"alertname": "E2EPaymentsDown", "severity": "critical",
                       "service": "payments"}  # fmt: skip
        free_labels = {"alertname": "E2ELedgerDown", "severity": "critical", "service": "ledger"}
        stack.post_alert(held_labels, fired_at, summary="payments down (planned)")
        stack.post_alert(free_labels, fired_at, summary="ledger down (not planned)")
        held = stack.wait_for_alert("E2EPaymentsDown")
        free = stack.wait_for_alert("E2ELedgerDown")
        held_id, free_id = int(held["id"]), int(free["id"])
        stack.wait_for(
            "the unplanned outage to page",
            lambda: any(p.level == 0 for p in stack.console_pages(free_id)),
        )
        # Held, with a note saying so (what follows checks it paged only after the window).
        assert any(e["kind"] == "maintenance" for e in stack.show(held_id)["timeline"])

        # The window runs out while payments still fires: it escalates from then.
        stack.wait_for(
            "the held alert to page after the window",
            lambda: any(p.level == 0 for p in stack.console_pages(held_id)),
        )
        shown = stack.show(held_id)
        paged = [iso(e["at"]) for e in shown["timeline"] if e["kind"] == "paged"]
        ended = [iso(e["at"]) for e in shown["timeline"] if e["kind"] == "maintenance_ended"]
        assert ended and min(paged) >= ended[0] >= window_end
        assert iso(shown["opened_at"]) < window_end  # tracked all along, paged after


@pytest.fixture
def pd_client(make_stack: Callable[..., Stack], sqlite_url: str) -> Iterator[Any]:
    stack = make_stack(sqlite_url, tls=True, alertmanager=False, heartbeats=False)
    # The certificate tests.fakes.smtp_sink.self_signed_cert made for the daemon.
    cert = ssl.create_default_context(cafile=str(stack.workdir / "smtp-cert.pem"))
    # PagerDuty's client insists on https (its `url` setter refuses anything else), so the
    # daemon serves HTTPS with a self-signed certificate (`serve --tls-cert/--tls-key`) and
    # the client, an httpx.Client underneath, trusts that certificate through `verify`.
    client = EventsApiV2Client(GRAFANA_KEY, base_url=stack.escalator.base_url, verify=cert)
    client.retry[429] = 0  # fail rather than retry forever if a test ever trips the limit
    yield stack, client, cert
    client.close()


def _api(stack: Stack, cert: ssl.SSLContext, path: str) -> Any:
    response = httpx.get(
        f"{stack.escalator.base_url}{path}",
        headers={"Authorization": f"Bearer {stack.api_token}"},
        verify=cert,
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_pagerduty_client_triggers_acknowledges_resolves_and_sends_a_change(
    pd_client: tuple[Stack, EventsApiV2Client, ssl.SSLContext],
) -> None:
    stack, client, cert = pd_client
    with stack.dump_logs_on_failure():
        dedup_key = client.trigger(
            "ledger p99 latency over 2s", "ledger-1", severity="critical",
            custom_details={"p99_ms": 2300}, links=[{"href": "https://grafana.example/d/1"}],
        )  # fmt: skip
        assert len(dedup_key) == 32  # generated, as PagerDuty does
        (alert,) = _api(stack, cert, "/api/v1/alerts")
        alert_id = int(alert["id"])
        assert alert["labels"]["service"] == "ledger"
        assert alert["labels"]["integration"] == "grafana"
        assert client.trigger("ledger p99 over 3s", "ledger-1", dedup_key=dedup_key) == dedup_key
        shown = _api(stack, cert, f"/api/v1/alerts/{alert_id}")
        assert shown["summary"] == "ledger p99 over 3s"  # the same alert, updated
        stack.wait_for(
            "the level 0 page", lambda: any(p.level == 0 for p in stack.console_pages(alert_id))
        )

        # Deploys are the first thing the runbook asks about: they land on the timeline.
        client.send_change_event(
            payload={"summary": "deploy ledger v42", "source": "github-actions",
                     "timestamp": datetime.now(UTC).isoformat()},
            links=[{"href": "https://ci.example/run/42", "text": "run 42"}],
        )  # fmt: skip
        shown = _api(stack, cert, f"/api/v1/alerts/{alert_id}")
        (change,) = [e for e in shown["timeline"] if e["kind"] == "change"]
        assert "deploy ledger v42" in change["detail"] and change["actor"] == "grafana"

        assert client.acknowledge(dedup_key) == dedup_key
        shown = stack.show(alert_id)  # the CLI on the daemon's database
        assert (shown["status"], shown["acked_by"]) == ("acknowledged", "grafana (events v2)")
        assert client.resolve(dedup_key) == dedup_key
        shown = stack.show(alert_id)
        assert (shown["status"], shown["resolved_by"]) == ("resolved", "grafana (events v2)")
        assert [a["id"] for a in stack.alerts()] == [alert_id]


def test_bad_events_get_pagerduty_shaped_400s_and_write_nothing(
    pd_client: tuple[Stack, EventsApiV2Client, ssl.SSLContext],
) -> None:
    stack, _client, cert = pd_client
    url = f"{stack.escalator.base_url}/v2/enqueue"
    good_payload = {"summary": "s", "source": "x", "severity": "critical"}
    bad: list[Any] = [
        b"{",
        {"routing_key": GRAFANA_KEY, "event_action": "trigger"},
        {"routing_key": GRAFANA_KEY, "event_action": "trigger",
         "payload": {**good_payload, "severity": "sev1"}},
        {"routing_key": "f" * 32, "event_action": "trigger", "payload": good_payload},
        {"routing_key": GRAFANA_KEY, "event_action": "acknowledge"},
    ]  # fmt: skip
    with stack.dump_logs_on_failure():
        for body in bad:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            answer = httpx.post(url, content=content, verify=cert, timeout=15,
                                headers={"Content-Type": "application/json"})  # fmt: skip
            assert answer.status_code == 400, answer.text
            shaped = answer.json()
            assert shaped["status"] == "invalid event", shaped
            assert shaped["message"] == "Event object is invalid" and shaped["errors"]
        assert stack.alerts() == []
        assert _api(stack, cert, "/api/v1/alerts?all=true") == []
