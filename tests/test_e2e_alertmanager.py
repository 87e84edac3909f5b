"""End to end: a real Alertmanager feeds the real `escalator serve`, checked through the CLI.

Nothing here is imported from the daemon at run time: the daemon, Alertmanager and every
CLI call are separate processes talking HTTP and SQL, exactly as on a server. Time is
compressed by rewriting the shipped config/escalator.yaml (levels seconds apart instead of
minutes), so the test follows whatever the shipped policy says rather than a copy of it.

Every wait polls with a generous timeout; nothing asserts how long anything took.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from escalator.config import Config, Policy
from escalator.roster.oncall import recipients
from tests.support.e2e import (
    Stack,
    compressed_config,
    iso,
    start_stack,
)
from tests.support.ports import free_port
from tests.support.processes import (
    ManagedProcess,
    ProcessError,
    clean_env,
)


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Start escalator on a compressed copy of the shipped config, then Alertmanager."""
    started: list[ManagedProcess] = []

    def make(database_url: str, config_after_serve: bool = False) -> Stack:
        config_path = tmp_path / "escalator.yaml"
        config = compressed_config(config_path)
        webhook_token, api_token = secrets.token_hex(16), secrets.token_hex(16)
        env = clean_env(ESCALATOR_WEBHOOK_TOKEN=webhook_token, ESCALATOR_API_TOKEN=api_token)
        return start_stack(
            tmp_path, config_path, config, database_url, free_port(), webhook_token,
            api_token, env, started, config_after_serve,
        )  # fmt: skip

    try:
        yield make
    finally:
        # Alertmanager first: it must not post to a daemon that is going away.
        for process in reversed(started):
            process.stop()


def _sent(shown: dict[str, Any]) -> list[tuple[str, int, datetime]]:
    """(recipient, level, when) of every delivery the timeline records as sent."""
    return [
        (entry["actor"], entry["level"], iso(entry["at"]))
        for entry in shown["timeline"]
        if entry["kind"] == "sent"
    ]


def _recipient_ids(config: Config, policy: Policy, level: int, at: datetime) -> set[str]:
    """Who the shipped roster says a level reaches at `at` (people and chat channels)."""
    return {r.id for r in recipients(config, policy.steps[level], at)}


def test_critical_alert_walks_the_matrix_until_ack_and_alertmanager_resolve(
    make_stack: Callable[..., Stack], sqlite_url: str
) -> None:
    """Level 0 and 1 pages, a CLI ack, 'still down' pages after it, resolve by Alertmanager."""
    stack = make_stack(sqlite_url)
    policy = stack.config.policies["critical"]
    # The scenario rests on the shipped matrix: level 1 (the engineering lead) only while
    # nobody acknowledged, level 2 (DevOps) while the service is still down, acked or not.
    assert policy.steps[1].condition == "unacknowledged"
    assert policy.steps[2].condition == "unresolved"
    unacked_only = {i for i, s in enumerate(policy.steps) if s.condition == "unacknowledged"}

    with stack.dump_logs_on_failure():
        fired_at = datetime.now(UTC).replace(microsecond=0)
        labels = {
            "alertname": "E2EPaymentsDown",
            "severity": "critical",
            "service": "payments",
            "instance": "payments-1:8080",
        }
        stack.post_alert(labels, fired_at, summary="payments API is down")
        opened = stack.wait_for_alert("E2EPaymentsDown")
        alert_id = int(opened["id"])
        assert opened["policy"] == "critical"
        assert opened["labels"] == labels
        opened_at = iso(opened["opened_at"])
        level0 = _recipient_ids(stack.config, policy, 0, opened_at)
        level1 = _recipient_ids(stack.config, policy, 1, opened_at)
        level2 = _recipient_ids(stack.config, policy, 2, opened_at)
        assert level0 and level1 and level2

        # Levels 0 and 1 reach the console (the embedded default channel) ...
        def printed(level: int, who: set[str]) -> bool:
            seen = {p.who.lstrip("#") for p in stack.console_pages(alert_id) if p.level == level}
            return who <= seen

        stack.wait_for("level 0 pages on escalator's stdout", lambda: printed(0, level0))
        stack.wait_for("level 1 pages on escalator's stdout", lambda: printed(1, level1))
        assert all(p.kind == "PAGE" for p in stack.console_pages(alert_id) if p.level <= 1)

        # ... and the timeline, read through the CLI on the daemon's database.
        def has_sent(shown: dict[str, Any], levels: dict[int, set[str]]) -> bool:
            sent = {(who, level) for who, level, _ in _sent(shown)}
            return {(who, level) for level, people in levels.items() for who in people} <= sent

        def timeline_has(levels: dict[int, set[str]]) -> dict[str, Any]:
            stack.wait_for(
                f"pages {levels} in the timeline",
                lambda: has_sent(stack.polled_show(alert_id), levels),
            )
            shown = stack.show(alert_id)  # `escalator show ID -o json` on the database
            assert has_sent(shown, levels), shown["timeline"]
            return shown

        shown = timeline_has({0: level0, 1: level1})
        assert shown["status"] == "triggered"
        paged_levels = [e["level"] for e in shown["timeline"] if e["kind"] == "paged"]
        assert paged_levels[:2] == [0, 1]

        # An on-call engineer acknowledges with the CLI on the daemon's database.
        out = stack.cli("ack", str(alert_id), "--as", "alice")
        assert f"#{alert_id}" in out and "acknowledged by alice" in out
        acked = stack.show(alert_id)
        assert acked["status"] == "acknowledged"
        assert acked["acked_by"] == "alice"
        acked_at = iso(acked["acked_at"])
        ack_entries = [e for e in acked["timeline"] if e["kind"] == "acknowledged"]
        assert [(e["actor"], e["channel"]) for e in ack_entries] == [("alice", "cli")]
        # Acknowledging twice changes nothing (and says so).
        again = stack.cli("ack", str(alert_id), "--as", "bob")
        assert "already acknowledged by alice" in again

        # "Still down": the unresolved level 2 (DevOps) pages the acknowledged alert.
        shown = timeline_has({2: level2})
        stack.wait_for("level 2 pages on escalator's stdout", lambda: printed(2, level2))
        assert shown["status"] == "acknowledged"
        # Usually the ack landed first and the acknowledged alert was still escalated to
        # DevOps. (On a very slow machine level 2 may have fallen due before the ack; the
        # unresolved step paged DevOps either way, as waited for above.)
        assert {who for who, level, _ in _sent(shown) if level == 2} == level2
        for who, level, when in _sent(shown):
            # Escalation of `unacknowledged` steps stopped at the ack: none sent after it.
            if level in unacked_only:
                assert when <= acked_at, f"{who} paged at level {level} after the ack"
        lead_lines = [p for p in stack.console_pages(alert_id) if p.who in level1 - level0]
        assert len(lead_lines) == len(level1 - level0), lead_lines

        # Alertmanager sees the service recover and sends the resolved notification.
        stack.post_alert(labels, fired_at, ends_at=datetime.now(UTC) - timedelta(seconds=1))

        stack.wait_for(
            "Alertmanager's resolve to close the alert",
            lambda: stack.polled_show(alert_id)["status"] == "resolved",
        )
        everything = stack.alerts()  # escalator list --all -o json
        final = next(a for a in everything if a["id"] == alert_id)
        assert final["status"] == "resolved"
        # One alert only: Alertmanager's repeats and the resolved post were idempotent.
        assert [a["id"] for a in everything if a["alertname"] == "E2EPaymentsDown"] == [alert_id]
        assert final["resolved_by"] == "alertmanager"
        assert final["next_action_at"] is None
        assert all(a["id"] != alert_id for a in stack.alerts(include_resolved=False))

        # Escalation is over: no decision to page after the resolve, nothing left to send.
        shown = stack.show(alert_id)
        resolved = [e for e in shown["timeline"] if e["kind"] == "resolved"]
        assert [(e["actor"], e["channel"]) for e in resolved] == [("alertmanager", "alertmanager")]
        resolved_at = iso(resolved[0]["at"])
        assert all(iso(e["at"]) <= resolved_at for e in shown["timeline"] if e["kind"] == "paged")
        # (Escalation pages carry their level; other notices, such as an incident's
        # resolution message, may legitimately be queued by the resolve itself.)
        pages = [n for n in shown["notifications"] if n["level"] is not None]
        assert all(n["status"] != "pending" for n in pages), pages


def test_warning_alert_acked_through_the_http_api_on_postgresql(
    make_stack: Callable[..., Stack], pg_url: str
) -> None:
    """The laptop path: `escalator --server URL --token T` acks, lists and resolves."""
    # `serve --config FILE`, the README's spelling (test 1 uses the global option).
    stack = make_stack(pg_url, config_after_serve=True)
    policy = stack.config.policies["warning"]
    assert policy.steps[0].urgency == "notify"
    assert policy.steps[1].condition == "unacknowledged"

    with stack.dump_logs_on_failure():
        # A wrong token is refused, with the reason.
        with pytest.raises(ProcessError, match="401"):
            stack.cli("list", remote=True, token="not-the-token")

        fired_at = datetime.now(UTC).replace(microsecond=0)
        labels = {"alertname": "E2EDiskFilling", "severity": "warning", "service": "ledger"}
        stack.post_alert(labels, fired_at, summary="disk 85% full")
        opened = stack.wait_for_alert("E2EDiskFilling", remote=True)
        alert_id = int(opened["id"])
        assert opened["policy"] == "warning"
        level0 = _recipient_ids(stack.config, policy, 0, iso(opened["opened_at"]))

        def notified() -> bool:
            seen = {p.who.lstrip("#") for p in stack.console_pages(alert_id) if p.level == 0}
            return level0 <= seen

        stack.wait_for("level 0 notifications on escalator's stdout", notified)
        assert {p.kind for p in stack.console_pages(alert_id) if p.level == 0} == {"NOTIFY"}

        out = stack.cli("ack", str(alert_id), "--as", "bob", remote=True)
        assert f"ok #{alert_id}" in out
        listed = {a["id"]: a for a in stack.alerts(include_resolved=False, remote=True)}
        assert listed[alert_id]["status"] == "acknowledged"
        assert listed[alert_id]["acked_by"] == "bob"

        # Level 1 (page if unacknowledged past the response time) comes due and finds the
        # alert acknowledged; after it nothing more is scheduled.
        def skipped(shown: dict[str, Any]) -> bool:
            return any(
                e["kind"] == "step_skipped" and "level 1 " in e["detail"] for e in shown["timeline"]
            )

        def paged(shown: dict[str, Any]) -> bool:
            return any(e["kind"] == "paged" and e["level"] == 1 for e in shown["timeline"])

        def level1_decided() -> bool:
            shown = stack.polled_show(alert_id)
            return skipped(shown) or paged(shown)

        stack.wait_for("level 1 to come due", level1_decided)
        shown = stack.show(alert_id, remote=True)
        ack = next(e for e in shown["timeline"] if e["kind"] == "acknowledged")
        assert (ack["actor"], ack["channel"]) == ("bob", "api")
        due = iso(shown["opened_at"]) + policy.steps[1].after
        if iso(ack["at"]) < due:
            # The usual case: the ack landed first, so level 1 was skipped, not paged.
            assert skipped(shown) and not paged(shown)
            assert not [p for p in stack.console_pages(alert_id) if p.level == 1]
        else:  # a very slow machine: the page legitimately went out before the ack
            assert paged(shown)
        assert shown["status"] == "acknowledged"
        assert shown["next_action_at"] is None

        out = stack.cli("resolve", str(alert_id), "--as", "bob", remote=True)
        assert f"ok #{alert_id}" in out
        final = next(a for a in stack.alerts(remote=True) if a["id"] == alert_id)
        assert (final["status"], final["resolved_by"]) == ("resolved", "bob")

        # Alertmanager's later resolved notification finds it closed and changes nothing.
        stack.post_alert(labels, fired_at, ends_at=datetime.now(UTC) - timedelta(seconds=1))
        stack.wait_for(
            "Alertmanager to deliver the resolved notification",
            lambda: stack.metric('escalator_webhook_alerts_total{status="resolved"}') >= 1,
        )
        final = next(a for a in stack.alerts(remote=True) if a["id"] == alert_id)
        assert (final["status"], final["resolved_by"]) == ("resolved", "bob")
