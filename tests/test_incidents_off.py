"""`incidents: {enabled: false}` turns the incident protocol off; paging goes on.

The multiple-critical trigger is an escalation trigger of its own: it stays on unless
`incidents.multiple_critical.enabled` is false too (the README says so).
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select

from escalator.config import Config, parse_config
from escalator.store.db import transaction
from escalator.store.tables import IncidentRow, OutboxRow
from tests.support.helpers import SHIPPED_CONFIG, am_alert
from tests.support.rig import Rig


def _config(incidents: dict[str, Any]) -> Config:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["incidents"] = incidents
    return parse_config(yaml.safe_dump(data), "test-config")


def _three_criticals(rig: Rig) -> None:
    rig.fire(*(am_alert(fingerprint=f"f{i}", alertname=f"Down{i}") for i in range(3)))
    rig.step()


def _reasons(rig: Rig) -> list[str]:
    with transaction(rig.factory) as session:
        return list(session.scalars(select(OutboxRow.reason).order_by(OutboxRow.id)))


def test_incidents_off_pages_but_declares_nothing(database_url: str) -> None:
    rig = Rig(
        database_url, config=_config({"enabled": False, "multiple_critical": {"enabled": False}})
    )
    try:
        _three_criticals(rig)
        with transaction(rig.factory) as session:
            assert session.scalars(select(IncidentRow)).all() == []
        reasons = _reasons(rig)
        assert reasons and not [r for r in reasons if r.startswith("incident ")]
        assert {d.recipient for d in rig.rec.pages()} >= {"alice"}  # the on-call is paged
    finally:
        rig.close()


def test_incidents_off_keeps_the_multiple_critical_trigger_unless_off_too(
    database_url: str,
) -> None:
    rig = Rig(database_url, config=_config({"enabled": False}))
    try:
        _three_criticals(rig)
        with transaction(rig.factory) as session:
            assert session.scalars(select(IncidentRow)).all() == []
        assert [r for r in _reasons(rig) if r.startswith("incident ")] == [
            "incident multiple_critical"
        ]
    finally:
        rig.close()
