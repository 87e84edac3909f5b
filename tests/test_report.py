"""`escalator report`: numbers from a real store after driving real escalations, plus the
JSON output and the chart files of the CLI."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalator.cli.main import main
from escalator.escalation.machine import Ack, Resolve
from escalator.read.report import AlertRecord, build, load, percentile, week_of
from escalator.store.db import transaction
from tests.support.helpers import SHIPPED_CONFIG, T0, am_alert
from tests.support.rig import Rig


def _tick_at(rig: Rig, when: datetime) -> None:
    rig.clock.current = when
    rig.step()


def _scenario(rig: Rig, start: datetime) -> tuple[int, int, int]:
    """Three alerts: acked fast, acked late after escalating to the top, and a warning
    nobody acknowledged (paged at its 30 minutes, then cleared by Alertmanager)."""
    (fast,) = rig.fire(am_alert(fingerprint="f1", alertname="CredlinkServiceDown")).opened
    _tick_at(rig, start)
    rig.clock.current = start + timedelta(minutes=2)
    rig.act([fast], Ack(by="alice", via="sms"))
    rig.clock.current = start + timedelta(minutes=20)
    rig.act([fast], Resolve(by="alice", via="cli"))

    day2 = start + timedelta(days=1)
    rig.clock.current = day2
    (late,) = rig.fire(am_alert(fingerprint="f2", alertname="CredlinkServiceDown")).opened
    for minute in (0, 5, 6):
        _tick_at(rig, day2 + timedelta(minutes=minute))
    rig.clock.current = day2 + timedelta(minutes=8)
    rig.act([late], Ack(by="bob", via="cli"))
    for minute in (15, 30, 45):
        _tick_at(rig, day2 + timedelta(minutes=minute))
    rig.clock.current = day2 + timedelta(minutes=59)
    rig.act([late], Resolve(by="bob", via="cli"))

    day8 = start + timedelta(days=8)
    rig.clock.current = day8
    warning = am_alert(fingerprint="w1", severity="warning", alertname="HealthCheckSlowResponse")
    (silent,) = rig.fire(warning).opened
    for minute in (0, 30, 31):
        _tick_at(rig, day8 + timedelta(minutes=minute))
    rig.clock.current = day8 + timedelta(minutes=40)
    rig.fire({**warning, "status": "resolved"})
    _tick_at(rig, day8 + timedelta(minutes=40))
    return fast, late, silent


def test_percentiles_and_weeks() -> None:
    assert percentile([], 90) is None
    assert percentile([120.0, 480.0], 90) == 444.0
    assert percentile([5.0], 90) == 5.0
    assert week_of(T0) == "2026-W10"
    record = AlertRecord(1, "A", "critical", T0, 0, None, None, None, False, 0)
    report = build([record], [], T0, T0 + timedelta(days=1))
    assert report["totals"]["time_to_acknowledge"] == {"median_seconds": None, "p90_seconds": None}


def test_report_from_real_escalations(database_url: str) -> None:
    rig = Rig(database_url)
    try:
        ids = _scenario(rig, T0)
        with transaction(rig.factory) as session:
            records, pages = load(session, T0 - timedelta(days=1), T0 + timedelta(days=30))
            assert tuple(r.id for r in records) == ids
            # The window is honoured: from day 2 on, only two alerts.
            assert len(load(session, T0 + timedelta(days=1), T0 + timedelta(days=30))[0]) == 2
        report = build(records, pages, T0, T0 + timedelta(days=30))
        totals = report["totals"]
        assert (totals["count"], totals["acknowledged"], totals["resolved"]) == (3, 2, 3)
        assert totals["sla_breaches"] == 2  # bob at 8 min (critical: 5m), nobody for the warning

        by_name = {r["alertname"]: r for r in report["by_alertname"]}
        down = by_name["CredlinkServiceDown"]
        assert down["count"] == 2
        assert down["time_to_acknowledge"] == {"median_seconds": 300.0, "p90_seconds": 444.0}
        assert down["time_to_resolve"]["median_seconds"] == (1200 + 3540) / 2
        assert down["sla_breaches"] == 1
        assert down["max_level"] == 4
        # Pages (not notify-urgency messages or incident notices): fast: alice; late: alice,
        # erin, dave, dana, carla, emergency, and the #incidents channel post of each level 0.
        assert down["pages_sent"] == 1 + 1 + 6 + 1
        slow = by_name["HealthCheckSlowResponse"]
        assert (slow["count"], slow["acknowledged"], slow["sla_breaches"]) == (1, 0, 1)
        assert slow["time_to_resolve"]["median_seconds"] == 2400.0
        assert (slow["pages_sent"], slow["max_level"]) == (1, 1)

        people = {r["person"]: r for r in report["by_person"]}
        assert people["alice"]["acknowledged"] == 1 and people["alice"]["sla_breaches"] == 0
        assert people["alice"]["time_to_acknowledge"]["median_seconds"] == 120.0
        assert people["alice"]["pages_received"] == 2
        assert (people["bob"]["acknowledged"], people["bob"]["sla_breaches"]) == (1, 1)
        assert people["bob"]["pages_received"] == 1  # the warning's page at 30 minutes
        assert people["erin"]["acknowledged"] == 0 and people["erin"]["pages_received"] == 1

        weeks = {w["week"]: w for w in report["by_week"]}
        assert set(weeks) == {"2026-W10", "2026-W11"}
        assert weeks["2026-W10"]["levels_reached"] == {"0": 1, "4": 1}
        assert weeks["2026-W11"]["levels_reached"] == {"1": 1}
        assert weeks["2026-W10"]["time_to_acknowledge"]["median_seconds"] == 300.0
    finally:
        rig.daemon.db.dispose()


def test_cli_report_json_table_and_charts(database_url: str, tmp_path: Path) -> None:
    # The CLI reads the wall clock: the escalations happened in the last two weeks.
    start = (datetime.now(UTC) - timedelta(days=12)).replace(microsecond=0)
    rig = Rig(database_url, start=start)
    try:
        _scenario(rig, start)
    finally:
        rig.daemon.db.dispose()
    runner = CliRunner()
    base = ["--config", str(SHIPPED_CONFIG), "--database-url", database_url]
    png, svg = tmp_path / "tta.png", tmp_path / "tta.svg"
    out = runner.invoke(main, [*base, "report", "--since", "30d", "-o", "json", "--chart", png])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["totals"]["count"] == 3 and data["totals"]["sla_breaches"] == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    out = runner.invoke(main, [*base, "report", "--since", "30d", "--chart", str(svg)])
    assert out.exit_code == 0, out.output
    assert "CredlinkServiceDown" in out.stdout and "PERSON" in out.stdout
    assert "3 alerts, 2 acknowledged, 2 SLA breaches" in out.stdout
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "Time to acknowledge per week" in text or "Time" in text

    # Only the last 9 days: the first two alerts fall outside.
    out = runner.invoke(main, [*base, "report", "--since", "9d", "-o", "json"])
    assert json.loads(out.stdout)["totals"]["count"] == 1
    out = runner.invoke(main, [*base, "report", "--chart", str(tmp_path / "x.gif")])
    assert out.exit_code == 2 and ".png or .svg" in out.output


def test_chart_without_matplotlib_says_how_to_install_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matplotlib is the optional `chart` extra: without it `report --chart` names the
    install command, exits 1 before touching the database, and writes no file."""
    # None in sys.modules makes `import matplotlib` raise ImportError, as when not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "tta.png"
    base = ["--config", str(SHIPPED_CONFIG), "--database-url", database_url]
    out = CliRunner().invoke(main, [*base, "report", "--chart", str(png)])
    assert out.exit_code == 1, out.output
    assert "pip install 'escalator[chart]'" in out.output
    assert "Traceback" not in out.output and not png.exists()
    # Without --chart the report works as before (on a database the daemon created).
    Rig(database_url).daemon.db.dispose()
    out = CliRunner().invoke(main, [*base, "report", "-o", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["totals"]["count"] == 0
