"""The SHIPPED config/alertmanager.yml, run by the real Alertmanager, in front of the real
`escalator serve`: a second alert under the same alertname and its resolution reach
escalator within 30 s (the issue measured 298.8 s with the old 5m group_interval).

Only the webhook URL is rewritten (escalator listens on a free port); the route, its
timers and the relative `credentials_file` are the shipped ones, and the token file is
written next to the config the way the file's own comment tells a user to (with a trailing
newline, as `printf '%s\\n'` and editors leave it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alertmanager import start_alertmanager
from tests.support.e2e import Stack, compressed_config
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, clean_env, start_escalator

SHIPPED_ALERTMANAGER = Path(__file__).resolve().parents[1] / "config" / "alertmanager.yml"
WITHIN = 30.0  # the bar for a second alert and a resolution


def _shipped_alertmanager(folder: Path, escalator_port: int, token: str) -> Path:
    text = SHIPPED_ALERTMANAGER.read_text()
    shipped_url = "http://127.0.0.1:9797/webhooks/alertmanager"
    assert text.count(shipped_url) == 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "alertmanager.yml"
    path.write_text(
        text.replace(shipped_url, f"http://127.0.0.1:{escalator_port}/webhooks/alertmanager")
    )
    credentials = yaml.safe_load(text)["receivers"][0]["webhook_configs"][0]["http_config"]
    token_file = folder / credentials["authorization"]["credentials_file"]
    token_file.write_text(f"{token}\n")
    token_file.chmod(0o600)
    return path


@pytest.fixture
def stack(tmp_path: Path, sqlite_url: str) -> Iterator[Stack]:
    started: list[ManagedProcess] = []
    try:
        config_path = tmp_path / "escalator.yaml"
        config = compressed_config(config_path)
        webhook_token, api_token = secrets.token_hex(16), secrets.token_hex(16)
        env = clean_env(ESCALATOR_WEBHOOK_TOKEN=webhook_token, ESCALATOR_API_TOKEN=api_token)
        escalator = start_escalator(tmp_path, config_path, sqlite_url, free_port(), env)
        started.append(escalator)
        port = int(escalator.base_url.rpartition(":")[2])
        am_config = _shipped_alertmanager(tmp_path / "alertmanager", port, webhook_token)
        alertmanager = start_alertmanager(tmp_path, am_config, free_port())
        started.append(alertmanager)
        yield Stack(
            workdir=tmp_path, config_path=config_path, config=config, database_url=sqlite_url,
            webhook_token=webhook_token, api_token=api_token, escalator=escalator,
            alertmanager=alertmanager, processes=[escalator, alertmanager],
        )  # fmt: skip
    finally:
        for process in reversed(started):  # Alertmanager first
            process.stop()


def test_second_alert_and_its_resolution_arrive_within_seconds(stack: Stack) -> None:
    labels = {
        "alertname": "CredlinkServiceDown",
        "severity": "critical",
        "service": "credlink-api",
        "job": "credlink-api",
    }
    started = datetime.now(UTC).replace(microsecond=0)
    with stack.dump_logs_on_failure():
        stack.post_alert({**labels, "instance": "api-1:8080"}, started, summary="api-1 down")
        # The group's first post comes after group_wait (10 s shipped).
        stack.wait_for("the first instance's alert", lambda: _open(stack, "api-1:8080"))
        # A second instance under the same alertname and service: same group, so it waits
        # for the group's next flush, group_interval after the previous one.
        second = started + timedelta(seconds=1)
        stack.post_alert({**labels, "instance": "api-2:8080"}, second, summary="api-2 down")
        stack.wait_for(
            "the second instance's alert, within 30 s",
            lambda: _open(stack, "api-2:8080"),
            timeout=WITHIN,
        )
        # It recovers: Prometheus sends the alert with endsAt; escalator must close it soon.
        stack.post_alert({**labels, "instance": "api-2:8080"}, second, ends_at=datetime.now(UTC))
        stack.wait_for(
            "the second instance's resolution, within 30 s",
            lambda: _resolved(stack, "api-2:8080"),
            timeout=WITHIN,
        )
    # Read once more through the CLI, as an on-call engineer would.
    listed = {a["labels"]["instance"]: a["status"] for a in stack.alerts()}
    assert listed == {"api-1:8080": "triggered", "api-2:8080": "resolved"}, listed
    resolved = _resolved(stack, "api-2:8080")
    assert resolved and resolved["resolved_by"] == "alertmanager"


def _find(stack: Stack, instance: str) -> dict[str, Any] | None:
    found = [a for a in stack.polled_alerts() if a["labels"].get("instance") == instance]
    assert len(found) <= 1, found  # one alert per instance, never a duplicate
    return found[0] if found else None


def _open(stack: Stack, instance: str) -> dict[str, Any] | None:
    found = _find(stack, instance)
    return found if found and found["status"] != "resolved" else None


def _resolved(stack: Stack, instance: str) -> dict[str, Any] | None:
    found = _find(stack, instance)
    return found if found and found["status"] == "resolved" else None
