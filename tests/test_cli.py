"""The `escalator` command against a real database file, PostgreSQL, and a real daemon.

Alerts are opened through the same ingest path the webhook uses; the CLI then reads and
changes them on the database directly, or through a uvicorn server on loopback with
`--server URL --token T`, the way an on-call laptop without the database does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from escalator.cli.main import main
from escalator.daemon import build_daemon
from escalator.engine.runner import wait_until
from escalator.store.db import current_revision, head_revision, make_engine, session_factory
from escalator.store.tables import AlertRow
from escalator.web.app import create_app
from tests.support.helpers import (
    ESCALATION_KINDS,
    SHIPPED_CONFIG,
    alert_rows,
    am_alert,
    am_body,
    timeline,
)
from tests.support.ports import free_port
from tests.support.rig import Recorder, Rig
from tests.support.servers import running_server

CONFIG = str(SHIPPED_CONFIG)


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        main,
        ["--config", CONFIG, "--database-url", url, *args],
        env={"ESCALATOR_SERVER": None, "ESCALATOR_API_TOKEN": None, **(env or {})},
        catch_exceptions=False,
    )


def read_alerts(url: str) -> list[AlertRow]:
    """The alert rows as the database holds them, read without building a daemon."""
    engine = make_engine(url)
    try:
        return alert_rows(session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def opened(sqlite_url: str) -> Iterator[tuple[str, list[int]]]:
    """A SQLite database holding two triggered critical alerts."""
    rig = Rig(sqlite_url)
    ids = rig.fire(
        am_alert(fingerprint="cccc000000000001", instance="api-1"),
        am_alert(fingerprint="cccc000000000002", instance="api-2", alertname="CredLinkDBDown"),
    ).opened
    rig.close()
    assert len(ids) == 2
    yield sqlite_url, ids


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'escalator.db'}"
    result = cli(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("schema is current")
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    assert cli(url, "db", "upgrade").exit_code == 0  # idempotent


def test_commands_on_a_database_without_schema_say_how_to_fix_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = cli(url, "list")
    assert result.exit_code == 1
    assert "escalator db upgrade" in result.output


def test_list_table_and_json(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    table = cli(url, "list")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "STATE", "LEVEL", "SEVERITY", "ALERT", "OPENED", "NEXT", "BY"]
    assert lines[1].split()[:5] == [f"#{second}", "triggered", "0", "critical", "CredLinkDBDown"]
    assert lines[2].split()[:5] == [f"#{first}", "triggered", "0", "critical", "CredLinkAPIDown"]
    as_json = json.loads(cli(url, "list", "-o", "json").output)
    assert [(a["id"], a["status"], a["level"]) for a in as_json] == [
        (second, "triggered", 0),
        (first, "triggered", 0),
    ]
    assert as_json[1]["next_action_at"] == "2026-03-02T19:05:00Z"
    assert as_json[1]["labels"]["instance"] == "api-1.credlink.internal:8080"


def test_show_prints_the_timeline(opened: tuple[str, list[int]]) -> None:
    url, (first, _) = opened
    result = cli(url, "show", str(first))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"#{first} CredLinkAPIDown [critical] triggered, level 0, policy critical"
    assert "  CredLink API is down" in lines
    assert "timeline:" in lines
    timeline = [
        line
        for line in lines[lines.index("timeline:") + 1 :]
        if line.split()[1] in ESCALATION_KINDS  # not the incident entries
    ]
    assert [line.split()[1] for line in timeline] == ["opened", "paged"]
    assert timeline[0].endswith("[alertmanager]")
    assert "level 0 (escalation): alice (rotation primary), incidents (channel)" in timeline[1]
    shown = json.loads(cli(url, "show", str(first), "-o", "json").output)
    assert shown["id"] == first
    pages = [n for n in shown["notifications"] if n["level"] is not None]
    assert [(n["recipient"], n["level"]) for n in pages] == [("alice", 0), ("incidents", 0)]
    missing = cli(url, "show", "4242")
    assert missing.exit_code == 1 and "no alert 4242" in missing.output


def test_ack_records_who_and_is_idempotent(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    result = cli(url, "ack", str(first), "--as", "alice")
    assert result.exit_code == 0, result.output
    assert result.output == f"ok #{first}: acknowledged by alice via cli\n"
    rows = {r.id: r for r in read_alerts(url)}
    assert (rows[first].status, rows[first].acked_by, rows[first].ack_via) == (
        "acknowledged",
        "alice",
        "cli",
    )
    assert rows[second].status == "triggered"
    again = cli(url, "ack", str(first), "--as", "bob")
    assert again.exit_code == 0
    assert again.output == f"-- #{first}: already acknowledged by alice\n"


def test_ack_all_and_snooze(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    before = datetime.now(UTC)
    result = cli(url, "ack", "--all", "--as", "bob", "--for", "30m")
    assert result.exit_code == 0, result.output
    lines = sorted(result.output.splitlines())
    assert [line.split(" until ")[0] for line in lines] == [
        f"ok #{first}: acknowledged by bob via cli",
        f"ok #{second}: acknowledged by bob via cli",
    ]
    rows = read_alerts(url)
    assert {r.status for r in rows} == {"acknowledged"}
    assert {r.acked_by for r in rows} == {"bob"}
    for row in rows:
        assert row.ack_expires_at is not None
        assert before + timedelta(minutes=30) <= row.ack_expires_at
        assert row.ack_expires_at <= datetime.now(UTC) + timedelta(minutes=30)
    nothing = cli(url, "ack", "--all", "--as", "bob")
    assert nothing.exit_code == 0 and nothing.output == "nothing to acknowledge\n"


def test_ack_errors(opened: tuple[str, list[int]]) -> None:
    url, (first, _) = opened
    unknown = cli(url, "ack", "4242", "--as", "alice")
    assert unknown.exit_code == 1
    assert unknown.output == "-- #4242: no such alert\n"
    mixed = cli(url, "ack", str(first), "4242", "--as", "alice")
    assert mixed.exit_code == 1  # the known one is still acknowledged
    assert f"ok #{first}: acknowledged by alice via cli" in mixed.output
    stranger = cli(url, "ack", str(first), "--as", "mallory")
    assert stranger.exit_code == 2 and "unknown person 'mallory'" in stranger.output
    neither = cli(url, "ack", "--as", "alice")
    assert neither.exit_code == 2 and "give alert IDs or --all" in neither.output
    bad_for = cli(url, "ack", str(first), "--as", "alice", "--for", "soon")
    assert bad_for.exit_code == 2 and "invalid duration 'soon'" in bad_for.output


def test_resolve(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    result = cli(url, "resolve", str(first), "--as", "dave")
    assert result.exit_code == 0, result.output
    assert result.output == f"ok #{first}: resolved by dave via cli\n"
    listed = json.loads(cli(url, "list", "-o", "json").output)
    assert [a["id"] for a in listed] == [second]
    everything = json.loads(cli(url, "list", "--all", "-o", "json").output)
    assert {a["id"]: a["resolved_by"] for a in everything} == {first: "dave", second: None}
    assert cli(url, "resolve", str(first), "--as", "dave").output.startswith("-- ")


def test_oncall_json_on_the_shipped_config(opened: tuple[str, list[int]]) -> None:
    url, _ = opened
    result = cli(url, "oncall", "--at", "2026-03-02T19:00:00Z", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.output)}
    assert rows[("rotation", "primary")]["people"] == ["alice"]
    assert rows[("rotation", "primary")]["until"] == "2026-03-09T13:00:00Z"  # 09:00 EDT
    assert rows[("role", "engineering_lead")]["people"] == ["erin"]
    assert rows[("role", "devops")]["people"] == ["dave", "dana"]
    assert rows[("role", "cto")]["people"] == ["carla"]
    assert rows[("role", "emergency")]["people"] == ["emergency"]
    next_week = json.loads(cli(url, "oncall", "--at", "2026-03-09T14:00:00Z", "-o", "json").output)
    assert {r["name"]: r["people"] for r in next_week}["primary"] == ["bob"]


def test_check_config_good_and_bad(tmp_path: Path) -> None:
    good = CliRunner().invoke(main, ["check-config", CONFIG], catch_exceptions=False)
    assert good.exit_code == 0, good.output
    assert f"{CONFIG}: ok (" in good.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SHIPPED_CONFIG.read_text()
        .replace("after: 15m", "after: 15 minutes")
        .replace("policy: warning\n", "policy: warnings\n", 1)
    )
    result = CliRunner().invoke(main, ["check-config", CONFIG, str(bad)], catch_exceptions=False)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith(str(bad))]
    # The schema error and the dangling reference in one pass, not one after the other.
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"{bad}: policies.critical.steps[2].after (line ")
    assert "invalid duration '15 minutes'" in errors[0]
    assert errors[1].startswith(f"{bad}: routes[1].policy (line ")
    assert "unknown policy 'warnings'" in errors[1]
    assert f"{CONFIG}: ok (" in result.output  # the good file is still checked and passes
    fixed = bad.read_text().replace("after: 15 minutes", "after: 15m")
    bad.write_text(fixed)
    result = CliRunner().invoke(main, ["check-config", str(bad)], catch_exceptions=False)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith(f"{bad}: ")]
    assert len(errors) == 1 and errors[0].startswith(f"{bad}: routes[1].policy (line ")


def test_postgresql_upgrade_list_ack(pg_url: str) -> None:
    assert cli(pg_url, "db", "upgrade").exit_code == 0
    rig = Rig(pg_url)
    (alert_id,) = rig.fire(am_alert()).opened
    rig.close()
    listed = json.loads(cli(pg_url, "list", "-o", "json").output)
    assert [a["id"] for a in listed] == [alert_id]
    acked = cli(pg_url, "ack", str(alert_id), "--as", "erin")
    assert acked.exit_code == 0 and acked.output.startswith(f"ok #{alert_id}: ")
    shown = json.loads(cli(pg_url, "show", str(alert_id), "-o", "json").output)
    assert shown["status"] == "acknowledged" and shown["acked_by"] == "erin"


# --server: a real daemon on loopback ---------------------------------------------------


def test_server_path_with_an_api_token(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", "hook-token")
    monkeypatch.setenv("ESCALATOR_API_TOKEN", "api-token")
    from escalator.config import load_config

    recorder = Recorder()
    daemon = build_daemon(load_config(CONFIG), sqlite_url, channels={"console": recorder})
    try:
        with running_server(create_app(daemon)) as url:
            posted = httpx.post(
                f"{url}/webhooks/alertmanager",
                json=am_body(
                    am_alert(fingerprint="dddd000000000001", instance="api-1"),
                    am_alert(fingerprint="dddd000000000002", instance="api-2"),
                ),
                headers={"Authorization": "Bearer hook-token"},
                timeout=30,
            )
            assert posted.status_code == 200, posted.text
            first, second = posted.json()["opened"]
            # The daemon's own engine and sender run: level 0 goes out without help.
            assert wait_until(lambda: len(recorder.sent) == 4, timeout=30)

            # A database URL that does not exist proves the CLI used the server.
            nowhere = "sqlite:////nonexistent/escalator.db"
            remote = ["--server", url, "--token", "api-token"]
            listed = cli(nowhere, *remote, "list", "-o", "json")
            assert listed.exit_code == 0, listed.output
            assert [a["id"] for a in json.loads(listed.output)] == [second, first]
            shown = cli(nowhere, *remote, "show", str(first))
            assert shown.exit_code == 0 and "timeline:" in shown.output
            assert "sent" in shown.output

            acked = cli(nowhere, *remote, "ack", str(first), "--as", "alice")
            assert acked.output == f"ok #{first}: acknowledged by alice via api\n"
            everyone = cli(nowhere, *remote, "ack", "--all", "--as", "bob", "--for", "10m")
            assert everyone.exit_code == 0, everyone.output
            assert everyone.output.startswith(f"ok #{second}: acknowledged by bob via api until ")
            unknown = cli(nowhere, *remote, "ack", "4242", "--as", "alice")
            assert unknown.exit_code == 1 and "no such alert" in unknown.output
            resolved = cli(nowhere, *remote, "resolve", str(first), "--as", "alice")
            assert resolved.output == f"ok #{first}: resolved by alice via api\n"

            oncall = cli(nowhere, *remote, "oncall", "--at", "2026-03-02T19:00:00Z", "-o", "json")
            assert {r["name"]: r["people"] for r in json.loads(oncall.output)}["primary"] == [
                "alice"
            ]

            wrong = cli(nowhere, "--server", url, "--token", "nope", "list")
            assert wrong.exit_code == 1 and "answered 401" in wrong.output
            stranger = cli(nowhere, *remote, "ack", str(second), "--as", "mallory")
            assert stranger.exit_code == 2  # refused before anything is sent

        rows = {r.id: r for r in alert_rows(daemon.factory)}
        assert (rows[first].status, rows[first].acked_by) == ("resolved", "alice")
        assert (rows[second].status, rows[second].acked_by) == ("acknowledged", "bob")
        assert rows[second].ack_expires_at is not None
    finally:
        daemon.stop()


def test_every_data_verb_works_through_the_server(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """escalate, snooze, update, postmortem(s), override, schedule and report through
    --server: the same verbs, the same services, the daemon's clock and database."""
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", "hook-token")
    monkeypatch.setenv("ESCALATOR_API_TOKEN", "api-token")
    from escalator.config import load_config

    daemon = build_daemon(load_config(CONFIG), sqlite_url, channels={"console": Recorder()})
    try:
        with running_server(create_app(daemon)) as url:
            posted = httpx.post(
                f"{url}/webhooks/alertmanager",
                json=am_body(am_alert(alertname="DatabaseHealthCheckFailed")),
                headers={"Authorization": "Bearer hook-token"},
                timeout=30,
            )
            (alert_id,) = posted.json()["opened"]
            nowhere = "sqlite:////nonexistent/escalator.db"  # proves the server was used
            remote = ["--server", url, "--token", "api-token"]

            def run(*args: str) -> Result:
                return cli(nowhere, *remote, *args)

            escalated = run("escalate", str(alert_id), "--as", "alice")
            assert escalated.exit_code == 0, escalated.output
            assert escalated.output.startswith(f"ok #{alert_id}: ")
            snoozed = run("snooze", str(alert_id), "--for", "10m", "--as", "alice")
            assert snoozed.output.startswith(f"ok #{alert_id}: acknowledged by alice via api")
            updated = run("update", str(alert_id), "Pool exhausted", "--as", "alice")
            assert updated.exit_code == 0 and "update recorded" in updated.output, updated.output
            early = run("postmortem", str(alert_id), "--link", "https://w/1", "--as", "alice")
            assert early.exit_code == 1 and "still open" in early.output
            assert run("resolve", str(alert_id), "--as", "alice").exit_code == 0
            owed = json.loads(run("postmortems", "-o", "json").output)
            assert [o["id"] for o in owed] == [alert_id]
            linked = run("postmortem", str(alert_id), "--link", "https://w/1", "--as", "alice")
            assert linked.exit_code == 0 and "incident closed" in linked.output
            assert json.loads(run("postmortems", "-o", "json").output) == []

            added = run(
                "override", "add", "primary", "carla", "--until", "+2h", "--as", "erin",
                "-o", "json",
            )  # fmt: skip
            assert added.exit_code == 0, added.output
            override_id = json.loads(added.output)["id"]
            listed = json.loads(run("override", "list", "-o", "json").output)
            assert [(o["id"], o["person"], o["created_by"]) for o in listed] == [
                (override_id, "carla", "erin")
            ]
            shifts = json.loads(run("schedule", "primary", "-o", "json").output)
            assert any(s["override_id"] == override_id for s in shifts)
            ical = run("schedule", "primary", "--ical")
            assert ical.exit_code == 0 and ical.output.startswith("BEGIN:VCALENDAR")
            removed = run("override", "remove", str(override_id), "--as", "erin")
            assert removed.exit_code == 0 and f"removed override #{override_id}" in removed.output
            gone = run("override", "remove", str(override_id), "--as", "erin")
            assert gone.exit_code == 1 and "404" in gone.output

            report = json.loads(run("report", "-o", "json").output)
            assert report["totals"]["count"] == 1 and report["totals"]["acknowledged"] == 1
            stranger = run("escalate", str(alert_id), "--as", "mallory")
            assert stranger.exit_code == 2  # refused before anything is sent

        kinds = {(r.kind, r.channel, r.actor) for r in timeline(daemon.factory, alert_id, False)}
        for expected in (
            ("escalated_manually", "api", "alice"),
            ("status_update", "api", "alice"),
            ("postmortem", "api", "alice"),
        ):
            assert expected in kinds, (expected, kinds)
    finally:
        daemon.stop()


def test_server_unreachable_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("sqlite:////nonexistent/x.db", "--server", url, "--token", "t", "list")
    assert result.exit_code == 1
    assert f"cannot reach {url}" in result.output
