"""The seed's communication protocol and escalation triggers, on a real store.

Pure rules (`escalator.incidents`) are checked with plain values; the rest drives a daemon
built by `build_daemon` (SQLite file and PostgreSQL) on a FixedClock with a recording
channel: `engine.tick()` then `sender.drain()`, minute by minute.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import delete, select

from escalator.cli.main import main
from escalator.config import Config, ConfigError, parse_config
from escalator.escalation.machine import Ack, Resolve
from escalator.incidents import protocol as incidents
from escalator.incidents.protocol import Episode, IncidentState, Schedule
from escalator.read.postmortems import postmortems
from escalator.services.context import Actor
from escalator.services.incidents import IncidentError, link_postmortem, post_update
from escalator.store.db import transaction
from escalator.store.tables import (
    AlertAliasRow,
    AlertRow,
    AlertSlaRow,
    IncidentRow,
    OutboxRow,
    TimelineRow,
    TriggerEpisodeRow,
)
from tests.support.helpers import SHIPPED_CONFIG, T0, am_alert, at
from tests.support.rig import Rig

METHODS = ("console", "chat", "email", "sms", "voice")


def _config(**incidents_overrides: Any) -> Config:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    # A chat webhook for #incidents so channel notices take the chat method.
    data.setdefault("channels", {})["chat"] = {"webhooks": {"incidents": {"env": "UNUSED_HOOK"}}}
    data["incidents"] = {**data.get("incidents", {}), **incidents_overrides}
    return parse_config(yaml.safe_dump(data), "test-config")


def _rig(database_url: str, config: Config | None = None) -> Rig:
    rig = Rig(database_url, config=config or _config(), methods=METHODS)
    # The trigger's memory has no foreign key to alerts, so the PostgreSQL reset between
    # tests does not empty it; start every test from "no episode".
    with transaction(rig.factory) as session:
        session.execute(delete(TriggerEpisodeRow))
    return rig


def _notices(rig: Rig, kind: str | None = None) -> list[OutboxRow]:
    with transaction(rig.factory) as session:
        query = select(OutboxRow).where(OutboxRow.reason.like("incident %")).order_by(OutboxRow.id)
        if kind is not None:
            query = query.where(OutboxRow.reason == f"incident {kind}")
        return list(session.scalars(query))


def _kinds(rows: list[OutboxRow]) -> list[tuple[str, str, str]]:
    return [(r.reason.removeprefix("incident "), r.recipient, r.method) for r in rows]


def _incident(rig: Rig, alert_id: int) -> IncidentRow:
    with transaction(rig.factory) as session:
        row = session.get(IncidentRow, alert_id)
        assert row is not None
        return row


def _timeline_kinds(rig: Rig, alert_id: int) -> list[str]:
    with transaction(rig.factory) as session:
        return list(
            session.scalars(
                select(TimelineRow.kind)
                .where(TimelineRow.alert_id == alert_id)
                .order_by(TimelineRow.id)
            )
        )


def _go(rig: Rig, minute: float) -> list[OutboxRow]:
    """Move to T0 + minute, tick and drain; the incident notices queued by that tick."""
    before = {r.id for r in _notices(rig)}
    rig.clock.current = at(minute)
    rig.step()
    return [r for r in _notices(rig) if r.id not in before]


# Pure rules -----------------------------------------------------------------------------

S = Schedule()


def test_reminders_follow_the_grid_and_a_missed_run_sends_one_not_a_burst() -> None:
    state = incidents.opened(7, T0, "incident-", S)
    assert state.channel == "incident-20260302-1900-7"
    state, kinds = incidents.due(state, T0, S)
    assert kinds == ["initial"]
    assert incidents.next_due_at(state) == at(15)
    state, kinds = incidents.due(state, at(15), S)
    assert kinds == ["update_reminder"]
    # The engine was down from 16 to 80: one reminder and one stakeholder update, then on.
    state, kinds = incidents.due(state, at(80), S)
    assert kinds == ["update_reminder", "stakeholder_update"]
    assert (state.next_reminder_at, state.next_stakeholder_at) == (at(95), at(110))
    # An update from the commander pushes the next reminder a full interval out.
    state = incidents.status_posted(state, at(90), S)
    assert state.next_reminder_at == at(105)


def test_postmortem_reminders_announce_overdue_once_and_stop() -> None:
    state = IncidentState(7, "incident-x", T0, initial_sent_at=T0)
    state = incidents.acknowledged(state, "alice", at(1))
    assert incidents.acknowledged(state, "bob", at(2)).commander == "alice"
    state = incidents.resolved(state, "alice", at(60), S)
    assert state.postmortem_due_at == at(60 + 24 * 60)
    sent: list[float] = []
    minute = 60.0
    while (nxt := incidents.next_due_at(state)) is not None:
        minute = (nxt - T0).total_seconds() / 60
        state, kinds = incidents.due(state, nxt, S)
        sent += [minute] * kinds.count("postmortem_reminder")
    hours = [round((m - 60) / 60) for m in sent]
    # Every 8 h after resolution, the due moment itself (24 h), then until 7 days past due.
    assert hours[:4] == [8, 16, 24, 32]
    assert hours[-1] <= 24 + 7 * 24 and hours[-1] > 24 + 6 * 24
    assert incidents.is_overdue(state, at(60 + 25 * 60))
    closed = incidents.postmortem_linked(state, "https://wiki/pm-7", "alice", at(2000))
    assert closed.status == "closed" and incidents.next_due_at(closed) is None


def test_multiple_critical_pages_once_per_episode() -> None:
    ep, page = incidents.multiple_critical(Episode(), [1, 2], 3, T0)
    assert not page and not ep.active
    ep, page = incidents.multiple_critical(ep, [1, 2, 3], 3, T0)
    assert page and ep.alert_ids == (1, 2, 3) and ep.episodes == 1
    ep, page = incidents.multiple_critical(ep, [1, 2, 3, 4], 3, at(1))
    assert not page
    ep, page = incidents.multiple_critical(ep, [4, 5], 3, at(2))
    assert not page and not ep.active
    ep, page = incidents.multiple_critical(ep, [4, 5, 6], 3, at(3))
    assert page and ep.episodes == 2


def test_severity_rise_and_sla_rules() -> None:
    assert incidents.is_severity_rise("warning", "critical")
    assert incidents.is_severity_rise("info", "warning")
    assert not incidents.is_severity_rise("critical", "warning")
    assert not incidents.is_severity_rise(None, "critical")
    assert incidents.labels_without_severity({"alertname": "A", "severity": "x"}) == {
        "alertname": "A"
    }
    assert not incidents.sla_breached(at(5), at(5), at(9))  # "within 5 minutes" includes 5:00
    assert incidents.sla_breached(at(5), at(5.01), at(9))
    assert not incidents.sla_breached(at(5), None, at(5))
    assert incidents.sla_breached(at(5), None, at(5.01))


# The protocol on the store --------------------------------------------------------------


def test_critical_alert_walks_the_whole_protocol(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert(alertname="CredlinkServiceDown")).opened
        first = _go(rig, 0)
        channel = f"#incident-20260302-1900-{alert_id}"
        assert _kinds(first) == [
            ("initial", "incidents", "chat"),
            ("initial", "erin", "email"),  # stakeholder: role engineering_lead (notify: email)
            ("initial", "product@credlink.example", "email"),
        ]
        chat = first[0].payload["text"]
        assert chat.startswith("🚨 INCIDENT DECLARED 🚨")
        for line in (
            "Service: CredLink API",
            "Severity: CRITICAL",
            "Start Time: 2026-03-02 19:00 UTC",
            f"Slack Channel: {channel}",
            "- Issue: CredlinkServiceDown: CredLink API is down",
            "- Impact: CredLink API is completely unavailable; All user requests are failing",
            "- Current Status: paging on-call, not yet acknowledged",
            "- Updates every 15m",
            # The alert's own runbook_url annotation wins (as on its pages); the configured
            # runbook for the name still gives the immediate actions.
            "Runbook: https://runbooks.credlink.example/api-down",
            "1. Check service status: kubectl get pods -n credlink; kubectl get services -n "
            "credlink",
        ):
            assert line in chat, line
        assert first[1].payload["subject"].startswith("[INCIDENT] CRITICAL CredlinkServiceDown")
        # What the chat channel and the email channel were handed.
        by_reason = {(d.reason, d.method): m for d, m in rig.rec.sent}
        chat_msg = by_reason[("incident initial", "chat")]
        assert chat_msg.title == "🚨 INCIDENT DECLARED 🚨" and "Slack Channel" in chat_msg.body
        mail = by_reason[("incident initial", "email")]
        assert mail.title == first[1].payload["subject"] and mail.body == first[1].payload["text"]
        # Escalation pages by email carry the runbook's immediate actions too.
        page_mail = next(m for d, m in rig.rec.sent if d.level == 0 and d.method == "email")
        assert "Immediate actions:" in page_mail.body
        assert "Check recent deployments" in page_mail.body

        rig.clock.current = at(2)
        rig.act([alert_id], Ack(by="alice", via="sms"))
        assert _incident(rig, alert_id).commander == "alice"
        # An ack does not cancel incident notices (condition NULL): all were sent anyway.
        assert {r.status for r in _notices(rig)} == {"sent"}

        assert _kinds(_go(rig, 15)) == [("update_reminder", "alice", "email")]
        rig.clock.current = at(20)
        post_update(
            rig.daemon.services, Actor("alice", "cli"), alert_id, "Rolled back deploy 142",
            "MONITORING", "19:45 UTC",
        )  # fmt: skip
        update = _go(rig, 20)
        assert _kinds(update) == [("status_update", "incidents", "chat")]
        text = update[0].payload["text"]
        assert text.startswith("📊 INCIDENT UPDATE 📊") and f"Incident: {channel}" in text
        assert "Status: MONITORING" in text and "- Rolled back deploy 142 (alice)" in text
        assert "- 19:45 UTC" in text and "Next Update: 2026-03-02 19:35 UTC" in text
        # The update moved the reminder from 30 to 35; the stakeholder update stays at 30.
        assert _kinds(_go(rig, 30)) == [
            ("stakeholder_update", "erin", "email"),
            ("stakeholder_update", "product@credlink.example", "email"),
        ]
        story = _notices(rig, "stakeholder_update")[0].payload["text"]
        assert "acknowledged by alice via sms" in story
        assert "[MONITORING] Rolled back deploy 142" in story
        assert "Incident Commander: alice" in story
        assert _kinds(_go(rig, 35)) == [("update_reminder", "alice", "email")]

        rig.clock.current = at(42)
        rig.act([alert_id], Resolve(by="alice", via="cli"))
        resolution = _go(rig, 42)
        assert [k for k, _, _ in _kinds(resolution)] == ["resolution"] * 3
        text = resolution[0].payload["text"]
        assert text.startswith("✅ INCIDENT RESOLVED ✅")
        assert "Duration: 42m" in text and "Resolved By: alice via cli" in text
        assert "- Rolled back deploy 142" in text
        assert "Due by 2026-03-03 19:42 UTC (owner: alice)" in text
        # No more status reminders once resolved.
        assert _go(rig, 60) == []

        # Post-mortem: reminders to the commander at +8 h and +16 h, overdue at +24 h.
        assert _kinds(_go(rig, 42 + 8 * 60)) == [("postmortem_reminder", "alice", "email")]
        assert _go(rig, 42 + 9 * 60) == []
        with transaction(rig.factory) as session:
            assert postmortems(session, at(42 + 9 * 60), overdue_only=True) == []
        _go(rig, 42 + 16 * 60)
        overdue = _go(rig, 42 + 24 * 60)
        assert "POST-MORTEM OVERDUE" in overdue[0].payload["text"]
        with transaction(rig.factory) as session:
            (owed,) = postmortems(session, at(42 + 25 * 60), overdue_only=True)
            assert owed["id"] == alert_id and owed["overdue_by"] == "1h"
        rig.clock.current = at(1600)
        link_postmortem(
            rig.daemon.services, Actor("alice", "cli"), alert_id, "https://wiki.example/pm/1"
        )
        assert _incident(rig, alert_id).status == "closed"
        assert _go(rig, 42 + 40 * 60) == []
        kinds = _timeline_kinds(rig, alert_id)
        for kind in ("incident_opened", "commander", "status_update", "postmortem_overdue"):
            assert kind in kinds
    finally:
        rig.daemon.db.dispose()


def test_a_drain_before_the_first_tick_after_a_restart_carries_runbook_lines(
    database_url: str,
) -> None:
    """Runbooks belong to the daemon that sends, not to the process: a restarted daemon
    whose sender drains before its engine ever ticked still adds its own runbook lines."""
    before = _rig(database_url)
    try:
        before.fire(am_alert(alertname="CredlinkServiceDown"))  # level 0 waits in the outbox
    finally:
        before.daemon.db.dispose()
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    # The page's own runbook_url annotation gives the link; the immediate actions come
    # from the configuration only, so they show whose runbooks the sender used.
    action = "Check the after-restart runbook copy"
    data["runbooks"]["CredlinkServiceDown"]["immediate_actions"] = [action]
    after = Rig(database_url, config=parse_config(yaml.safe_dump(data)), methods=METHODS)
    try:
        after.daemon.sender.drain()  # no engine tick, no ingest in this daemon
        pages = [m for d, m in after.rec.sent if d.level == 0 and d.method == "email"]
        assert pages and all(f"1. {action}" in m.body for m in pages)
    finally:
        after.daemon.db.dispose()


def test_warning_alerts_open_no_incident_and_updates_need_one(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        (alert_id,) = rig.fire(
            am_alert(severity="warning", alertname="HealthCheckSlowResponse")
        ).opened
        assert _go(rig, 0) == []
        rig.clock.current = at(1)
        with pytest.raises(IncidentError):
            post_update(rig.daemon.services, Actor("alice", "cli"), alert_id, "x")
    finally:
        rig.daemon.db.dispose()


def test_alertmanager_resolve_before_any_tick_still_announces_both(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        alert = am_alert(alertname="RedisHealthCheckFailed")
        (alert_id,) = rig.fire(alert).opened
        rig.clock.current = at(0.5)
        rig.fire({**alert, "status": "resolved", "endsAt": "2026-03-02T19:00:30Z"})
        sent = _go(rig, 0.5)
        assert [k for k, _, _ in _kinds(sent)] == ["initial"] * 3 + ["resolution"] * 3
        assert "Resolved By: alertmanager" in sent[-1].payload["text"]
        assert "Duration: 30s" in sent[-1].payload["text"]
        assert _incident(rig, alert_id).status == "resolved"
    finally:
        rig.daemon.db.dispose()


def test_templates_can_be_overridden_per_channel(database_url: str, tmp_path: Path) -> None:
    template = tmp_path / "initial-email.j2"
    template.write_text("Mail for {{ incident.channel }}: {{ alert.alertname }}")
    config = _config(
        templates={
            "chat": {"initial": {"text": "NEW INCIDENT {{ incident.channel }} ({{ service }})"}},
            "email": {"initial": {"file": str(template)}},
        }
    )
    rig = _rig(database_url, config)
    try:
        (alert_id,) = rig.fire(am_alert(alertname="CredlinkServiceDown")).opened
        texts = {r.method: r.payload["text"] for r in _go(rig, 0)}
        channel = f"#incident-20260302-1900-{alert_id}"
        assert texts == {
            "chat": f"NEW INCIDENT {channel} (CredLink API)",
            "email": f"Mail for {channel}: CredlinkServiceDown",
        }
    finally:
        rig.daemon.db.dispose()


# Escalation triggers --------------------------------------------------------------------


def _critical(n: int, name: str) -> dict[str, Any]:
    return am_alert(fingerprint=f"fp{n:014d}", alertname=name, instance=f"api-{n}")


def test_three_critical_alerts_page_the_lead_once_naming_them(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        ids = rig.fire(
            _critical(1, "CredlinkServiceDown"), _critical(2, "RedisHealthCheckFailed")
        ).opened
        _go(rig, 0)
        assert _notices(rig, "multiple_critical") == []  # two are not "multiple" (threshold 3)
        rig.clock.current = at(1)
        ids += rig.fire(_critical(3, "DatabaseHealthCheckFailed")).opened
        _go(rig, 1)
        pages = _notices(rig, "multiple_critical")
        # One page to the engineering lead, by each of erin's page rules (SMS now, voice a
        # minute later, email now) - not one per alert.
        assert sorted((r.recipient, r.method, r.urgency) for r in pages) == [
            ("erin", "email", "page"),
            ("erin", "sms", "page"),
            ("erin", "voice", "page"),
        ]
        sms = next(r for r in pages if r.method == "sms").payload["text"]
        assert sms.startswith("3 CRITICAL ALERTS OPEN:")
        for alert_id, name in zip(
            ids,
            ["CredlinkServiceDown", "RedisHealthCheckFailed", "DatabaseHealthCheckFailed"],
            strict=True,
        ):
            assert f"#{alert_id} {name}" in sms
        mail = next(r for r in pages if r.method == "email").payload["text"]
        assert 'Escalation trigger "Multiple critical alerts simultaneously"' in mail
        # A fourth alert in the same episode pages nobody again.
        rig.clock.current = at(2)
        ids += rig.fire(_critical(4, "CertificateExpiringSoon")).opened
        _go(rig, 2)
        assert len(_notices(rig, "multiple_critical")) == 3
        # The episode ends when fewer than three are open; a new one pages again.
        rig.clock.current = at(3)
        rig.act(ids[:2], Resolve(by="alice", via="cli"))
        _go(rig, 3)
        rig.clock.current = at(4)
        rig.fire(_critical(5, "CredlinkServiceDown"))
        _go(rig, 4)
        assert len(_notices(rig, "multiple_critical")) == 6
        assert "escalation_trigger" in _timeline_kinds(rig, ids[0])
    finally:
        rig.daemon.db.dispose()


def test_warning_turning_critical_keeps_its_clock_and_fires_due_levels(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        warning = am_alert(
            fingerprint="a000000000000001", severity="warning",
            alertname="HealthCheckHighFailureRate", starts_at="2026-03-02T19:00:00Z",
            instance="api-1:8080",
        )  # fmt: skip
        (alert_id,) = rig.fire(warning).opened
        _go(rig, 0)
        rig.clock.current = at(7)
        critical = {
            **am_alert(
                fingerprint="c000000000000002", severity="critical",
                alertname="HealthCheckHighFailureRate", starts_at="2026-03-02T19:06:30Z",
                instance="api-1:8080",
            ),
        }  # fmt: skip
        result = rig.fire(critical)
        assert result.opened == [] and result.updated == 1
        with transaction(rig.factory) as session:
            (row,) = session.scalars(select(AlertRow)).all()
            assert (row.id, row.severity, row.policy_name) == (alert_id, "critical", "critical")
            assert row.clock_base == T0 and row.opened_at == T0
            assert row.level == 1  # level 0 (on-call) and level 1 (lead, due at 5m) at once
            paged = session.scalars(
                select(OutboxRow.recipient).where(
                    OutboxRow.level.is_not(None), OutboxRow.created_at == at(7)
                )
            ).all()
            assert set(paged) == {"alice", "incidents", "erin"}
            assert session.get(IncidentRow, alert_id) is not None
            sla = session.get(AlertSlaRow, alert_id)
            assert sla is not None and sla.due_at == at(12)  # critical's 5m from the rise
            rise = session.scalars(
                select(TimelineRow.detail).where(TimelineRow.kind == "severity_raised")
            ).one()
            assert "warning -> critical" in rise and "clock kept from 2026-03-02 19:00:00" in rise
        # Level 2 (DevOps) follows at 15 minutes from the *original* start, not 7 + 15.
        _go(rig, 14)
        _go(rig, 15)
        with transaction(rig.factory) as session:
            assert session.get(AlertRow, alert_id).level == 2  # type: ignore[union-attr]
        # Repeats of the critical occurrence update the same alert.
        assert rig.fire(critical).opened == []
        # The warning occurrence clearing leaves the alert open while the critical fires.
        rig.clock.current = at(20)
        rig.fire({**warning, "status": "resolved", "endsAt": "2026-03-02T19:20:00Z"})
        with transaction(rig.factory) as session:
            assert session.get(AlertRow, alert_id).status != "resolved"  # type: ignore[union-attr]
            assert len(session.scalars(select(AlertAliasRow)).all()) == 2
        rig.fire({**critical, "status": "resolved", "endsAt": "2026-03-02T19:20:00Z"})
        with transaction(rig.factory) as session:
            assert session.get(AlertRow, alert_id).status == "resolved"  # type: ignore[union-attr]
        assert "occurrence_cleared" in _timeline_kinds(rig, alert_id)
    finally:
        rig.daemon.db.dispose()


def test_response_time_sla_is_recorded_per_alert(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        fast, slow, silent = rig.fire(
            _critical(1, "CredlinkServiceDown"),
            _critical(2, "RedisHealthCheckFailed"),
            am_alert(fingerprint="w1", severity="warning", alertname="CredlinkServiceDegraded"),
        ).opened
        rig.clock.current = at(3)
        rig.act([fast], Ack(by="alice", via="cli"))
        _go(rig, 5)  # exactly the 5 minutes: not breached yet
        with transaction(rig.factory) as session:
            assert session.get(AlertSlaRow, slow).breached_at is None  # type: ignore[union-attr]
        _go(rig, 6)
        rig.clock.current = at(8)
        rig.act([slow], Ack(by="bob", via="cli"))
        with transaction(rig.factory) as session:
            slas = {s.alert_id: s for s in session.scalars(select(AlertSlaRow))}
        assert (slas[fast].responded_by, slas[fast].breached_at) == ("alice", None)
        assert (slas[slow].responded_at, slas[slow].breached_at) == (at(8), at(5))
        assert (slas[silent].due_at, slas[silent].response_seconds) == (at(30), 1800)
        assert slas[silent].breached_at is None
        assert "sla_breached" in _timeline_kinds(rig, slow)
    finally:
        rig.daemon.db.dispose()


# CLI ------------------------------------------------------------------------------------


def test_cli_update_postmortem_and_runbook(database_url: str) -> None:
    # The CLI reads the wall clock: start two days ago so the post-mortem is overdue now.
    start = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
    rig = Rig(database_url, config=_config(), methods=METHODS, start=start)
    try:
        alert = am_alert(alertname="DatabaseHealthCheckFailed", starts_at=start.isoformat())
        (alert_id,) = rig.fire(alert).opened
        runner = CliRunner()
        base = ["--config", str(SHIPPED_CONFIG), "--database-url", database_url]
        env = {"ESCALATOR_USER": "alice"}
        out = runner.invoke(main, [*base, "update", str(alert_id), "Pool exhausted"], env=env)
        assert out.exit_code == 0, out.output
        assert f"#incident-{start:%Y%m%d-%H%M}-{alert_id}" in out.output
        with transaction(rig.factory) as session:
            assert session.get(IncidentRow, alert_id).last_update_at is not None  # type: ignore[union-attr]
        out = runner.invoke(main, [*base, "update", "999", "nothing"], env=env)
        assert out.exit_code == 1 and "has no incident" in out.output
        # Still open: no post-mortem yet.
        link = [*base, "postmortem", str(alert_id), "--link", "https://w/1"]
        out = runner.invoke(main, link, env=env)
        assert out.exit_code == 1 and "still open" in out.output
        # The actor rule is the service layer's, the same as through the API: a person the
        # configuration names (here the default, $ESCALATOR_USER, names nobody).
        out = runner.invoke(main, link, env={"ESCALATOR_USER": "mallory"})
        assert out.exit_code == 1 and "unknown person 'mallory'" in out.output
        rig.act([alert_id], Resolve(by="alice", via="cli"))
        out = runner.invoke(main, [*base, "postmortems", "-o", "json"])
        assert out.exit_code == 0 and json.loads(out.output)[0]["id"] == alert_id
        out = runner.invoke(main, [*base, "postmortem", "--overdue"])
        assert out.exit_code == 0 and "OVERDUE 1d" in out.output, out.output
        out = runner.invoke(main, link, env=env)
        assert out.exit_code == 0 and "incident closed" in out.output
        out = runner.invoke(main, [*base, "postmortems", "-o", "json"])
        assert json.loads(out.output) == []

        out = runner.invoke(main, [*base, "runbook", "DatabaseHealthCheckFailed"])
        assert out.exit_code == 0
        assert "https://runbooks.credlink.example/production#database-health-failure" in out.output
        assert "1. Check database status" in out.output
        out = runner.invoke(main, [*base, "runbook", "redishealthcheckfailed", "-o", "json"])
        assert json.loads(out.output)["alertname"] == "RedisHealthCheckFailed"
        out = runner.invoke(main, [*base, "runbook", "NoSuchAlert"])
        assert out.exit_code == 1 and "no runbook for 'NoSuchAlert'" in out.output
    finally:
        rig.daemon.db.dispose()


def test_shipped_config_has_a_runbook_for_each_of_the_seed_alerts() -> None:
    config = _config()
    assert set(config.runbooks) == {
        "CredlinkServiceDown",
        "DatabaseHealthCheckFailed",
        "RedisHealthCheckFailed",
        "HealthCheckSlowResponse",
        "CertificateExpiringSoon",
        "HealthCheckHighFailureRate",
        "CredlinkServiceDegraded",
    }
    assert all(rb.immediate_actions and rb.url for rb in config.runbooks.values())
    assert config.incidents.multiple_critical.threshold == 3
    assert config.incidents.status_update_every == timedelta(minutes=15)


def test_incident_settings_are_validated_with_their_path() -> None:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["incidents"].update(stakeholder_emails=["nope"], status_update_every="0s")
    data["incidents"]["templates"] = {"chat": {"initial": {}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(yaml.safe_dump(data), "bad.yaml")
    text = str(exc.value)
    assert "bad.yaml: incidents.status_update_every" in text and "longer than zero" in text
    assert "incidents.stakeholder_emails" in text and "'nope' is not an email address" in text
    assert "incidents.templates.chat.initial" in text and "exactly one of `text`" in text


def test_a_reminder_without_a_commander_goes_to_the_incident_channel(database_url: str) -> None:
    rig = _rig(database_url)
    try:
        (alert_id,) = rig.fire(am_alert(alertname="CertificateExpiringSoon")).opened
        _go(rig, 0)
        (reminder,) = _go(rig, 15)
        assert (reminder.recipient, reminder.method) == ("incidents", "chat")
        assert f"takes command (escalator ack {alert_id})" in reminder.payload["text"]
    finally:
        rig.daemon.db.dispose()


def test_a_storm_of_critical_alerts_pages_the_lead_once_naming_fifty_and_counting_all(
    database_url: str,
) -> None:
    """The trigger counts open criticals each tick without loading them; when an episode
    starts, one page names the first fifty and counts the rest."""
    rig = _rig(database_url)
    try:
        storm = [_critical(n, "CredlinkServiceDown") for n in range(1, 61)]
        ids = rig.fire(*storm).opened
        assert len(ids) == 60
        _go(rig, 0)
        pages = _notices(rig, "multiple_critical")
        assert sorted(r.method for r in pages) == ["email", "sms", "voice"]  # one page
        mail = next(r for r in pages if r.method == "email").payload["text"]
        assert "60" in mail
        noted = [k for k in (_timeline_kinds(rig, i) for i in ids) if "escalation_trigger" in k]
        assert len(noted) == 50  # the named ones carry it on their timeline
        _go(rig, 1)  # still one episode: no second page
        assert len(_notices(rig, "multiple_critical")) == 3
    finally:
        rig.daemon.db.dispose()


def test_one_tick_posts_each_incidents_own_updates_and_eta(database_url: str) -> None:
    """The tick reads every due incident's status updates at once (`updates_of`); each
    notice must still carry its own incident's updates, in order, and latest ETA."""
    rig = _rig(database_url)
    try:
        first, second, third = rig.fire(
            *(
                am_alert(
                    alertname="CredlinkServiceDown", instance=f"api-{i}", fingerprint=f"fp-own-{i}"
                )
                for i in range(3)
            )
        ).opened
        _go(rig, 0)
        rig.clock.current = at(20)
        alice = Actor("alice", "cli")
        post_update(rig.daemon.services, alice, first, "Alpha one", "IN PROGRESS", "alpha early")
        post_update(rig.daemon.services, alice, second, "Bravo one", "IN PROGRESS", "bravo eta")
        post_update(rig.daemon.services, alice, first, "Alpha two", "MONITORING", "alpha late")
        posted = _go(rig, 20)
        texts = {
            alert_id: [
                r.payload["text"]
                for r in posted
                if r.alert_id == alert_id and r.reason == "incident status_update"
            ]
            for alert_id in (first, second, third)
        }
        assert [("- Alpha one" in t, "- Alpha two" in t) for t in texts[first]] == [
            (True, False),
            (False, True),
        ]
        assert len(texts[second]) == 1 and "- Bravo one" in texts[second][0]
        assert "Alpha" not in texts[second][0] and texts[third] == []
        # Each incident's notices quote its own latest ETA.
        rig.clock.current = at(30)
        stakeholder = {r.alert_id: r.payload["text"] for r in _go(rig, 30) if r.method == "email"}
        assert "- alpha late" in stakeholder[first] and "alpha early" not in stakeholder[first]
        assert "- bravo eta" in stakeholder[second] and "alpha" not in stakeholder[second]
        assert "alpha" not in stakeholder[third] and "bravo" not in stakeholder[third]
    finally:
        rig.close()
