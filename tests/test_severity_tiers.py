"""Two tiers of one alert (HealthCheckHighFailureRate: warning >10 %, critical >50 %).

A check that fails outright fires the critical tier first (`for: 2m`) and the warning tier
later (`for: 5m`). Both are the same problem: the lower tier joins the open critical alert
(severity, policy and clock kept, nobody paged again) instead of opening a second alert,
the mirror image of a warning turning critical (tests/test_incidents.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from escalator.store.db import transaction
from escalator.store.tables import AlertAliasRow, AlertRow, IncidentRow, OutboxRow, TimelineRow
from tests.support.helpers import T0, am_alert, at
from tests.support.rig import Rig

NAME = "HealthCheckHighFailureRate"


def _tier(severity: str, fingerprint: str, starts_at: str, check: str = "redis") -> dict[str, Any]:
    return am_alert(
        fingerprint=fingerprint, severity=severity, alertname=NAME, starts_at=starts_at,
        instance="api-1:8080", check=check,
    )  # fmt: skip


def _resolved(alert: dict[str, Any], ends_at: str) -> dict[str, Any]:
    return {**alert, "status": "resolved", "endsAt": ends_at}


def _kinds(rig: Rig, alert_id: int) -> list[str]:
    with transaction(rig.factory) as session:
        return list(
            session.scalars(select(TimelineRow.kind).where(TimelineRow.alert_id == alert_id))
        )


def _pages_at(rig: Rig, minute: float) -> list[str]:
    with transaction(rig.factory) as session:
        return list(
            session.scalars(
                select(OutboxRow.recipient).where(
                    OutboxRow.level.is_not(None), OutboxRow.created_at == at(minute)
                )
            )
        )


def test_warning_after_critical_joins_it_and_keeps_critical(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        critical = _tier("critical", "c100000000000001", "2026-03-02T19:00:00Z")
        (alert_id,) = rig.fire(critical).opened
        rig.step()
        assert _pages_at(rig, 0)  # the critical tier paged the on-call at once
        rig.clock.current = at(3)
        warning = _tier("warning", "a100000000000002", "2026-03-02T19:03:00Z")
        result = rig.fire(warning)
        assert result.opened == [] and result.updated == 1
        with transaction(rig.factory) as session:
            (row,) = session.scalars(select(AlertRow)).all()
            assert (row.id, row.severity, row.policy_name) == (alert_id, "critical", "critical")
            assert row.labels["severity"] == "critical" and row.clock_base == T0
            assert len(session.scalars(select(IncidentRow)).all()) == 1
            aliases = {a.fingerprint: a.severity for a in session.scalars(select(AlertAliasRow))}
            assert aliases == {"c100000000000001": "critical", "a100000000000002": "warning"}
        assert _pages_at(rig, 3) == []  # joining pages nobody
        joined = [k for k in _kinds(rig, alert_id) if k == "occurrence_joined"]
        assert joined == ["occurrence_joined"]
        # Alertmanager re-sends the warning with every group flush: still no second alert.
        rig.clock.current = at(4)
        assert rig.fire(warning).opened == []
        # The escalation goes on under the critical policy: the lead at 5 minutes.
        rig.clock.current = at(5)
        rig.step()
        assert "erin" in _pages_at(rig, 5)
        # The critical tier clears (failure rate down to 20 %): the warning still fires.
        rig.clock.current = at(10)
        rig.fire(_resolved(critical, "2026-03-02T19:10:00Z"))
        with transaction(rig.factory) as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None and row.status != "resolved"
        assert "occurrence_cleared" in _kinds(rig, alert_id)
        rig.clock.current = at(12)
        rig.fire(_resolved(warning, "2026-03-02T19:12:00Z"))
        with transaction(rig.factory) as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None and row.status == "resolved"
            assert len(session.scalars(select(AlertRow)).all()) == 1
    finally:
        rig.close()


def test_both_tiers_in_one_body_open_one_critical_alert(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        warning = _tier("warning", "a200000000000001", "2026-03-02T18:58:00Z")
        critical = _tier("critical", "c200000000000002", "2026-03-02T18:59:00Z")
        result = rig.fire(warning, critical)
        assert len(result.opened) == 1 and result.updated == 1
        with transaction(rig.factory) as session:
            (row,) = session.scalars(select(AlertRow)).all()
            assert (row.id, row.severity, row.fingerprint) == (
                result.opened[0], "critical", "c200000000000002",
            )  # fmt: skip
        assert "occurrence_joined" in _kinds(rig, result.opened[0])
    finally:
        rig.close()


def test_lower_tier_of_another_check_is_its_own_alert(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        (critical_id,) = rig.fire(
            _tier("critical", "c300000000000001", "2026-03-02T19:00:00Z")
        ).opened
        rig.clock.current = at(2)
        other = _tier("warning", "a300000000000002", "2026-03-02T19:02:00Z", check="database")
        (warning_id,) = rig.fire(other).opened
        assert warning_id != critical_id
        with transaction(rig.factory) as session:
            severities = {r.id: r.severity for r in session.scalars(select(AlertRow))}
        assert severities == {critical_id: "critical", warning_id: "warning"}
    finally:
        rig.close()
