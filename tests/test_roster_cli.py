"""The roster's shell: override CLI on real databases, `schedule` (table, JSON, iCal parsed
back), `oncall --role`, `check-config` gap warnings, the authenticated calendar URL on a
real loopback server, and shift-change notices written once per shift."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result
from icalendar import Calendar
from sqlalchemy import select

from escalator.cli.main import main
from escalator.config import parse_config
from escalator.daemon import build_daemon
from escalator.roster.oncall import Override
from escalator.roster.shift_notices import REASON, ShiftNotices, create_notices, due_notices
from escalator.store.clock import FixedClock
from escalator.store.db import make_engine, session_factory, transaction, upgrade
from escalator.store.tables import OutboxRow
from escalator.web.app import create_app
from tests.support.helpers import SHIPPED_CONFIG, shipped_config
from tests.support.servers import running_server

# Shipped rotation: weekly, Monday 09:00 America/New_York, alice then bob from 2026-01-05.
HANDOFF = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # Monday 09:00 EDT: alice -> bob


def cli(url: str, *args: str, config: Path = SHIPPED_CONFIG) -> Result:
    # Whoever runs the command must be a configured person (the service layer's rule, the
    # same locally and through the API): erin, unless the test says --as.
    return CliRunner().invoke(
        main,
        ["--config", str(config), "--database-url", url, *args],
        env={"ESCALATOR_USER": "erin", "ESCALATOR_SERVER": None},
    )


def migrated(url: str) -> str:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


# override add / list / remove ----------------------------------------------------------------


def test_override_lifecycle(database_url: str) -> None:
    url = migrated(database_url)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    end = start + timedelta(days=2)
    added = cli(
        url,
        "override",
        "add",
        "primary",
        "carla",
        "--from",
        start.isoformat(),
        "--until",
        end.isoformat(),
        "--as",
        "erin",
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith("override #")
    assert "carla holds primary from" in added.output
    override_id = int(added.output.split("#")[1].split(":")[0])

    listed = json.loads(cli(url, "override", "list", "-o", "json").stdout)
    assert [(o["id"], o["person"], o["created_by"]) for o in listed] == [
        (override_id, "carla", "erin")
    ]
    assert datetime.fromisoformat(listed[0]["start"]) == start
    table = cli(url, "override", "list").stdout
    assert f"#{override_id}" in table and "carla" in table and "erin" in table

    during = (start + timedelta(hours=1)).isoformat()
    oncall = json.loads(
        cli(url, "oncall", "--at", during, "--role", "primary", "-o", "json").stdout
    )
    assert oncall == [
        {
            "kind": "rotation",
            "name": "primary",
            "people": ["carla"],
            "until": end.isoformat().replace("+00:00", "Z"),
            "override": True,
        }
    ]

    removed = cli(url, "override", "remove", str(override_id), "--as", "erin")
    assert removed.exit_code == 0 and f"removed override #{override_id}" in removed.output
    assert json.loads(cli(url, "override", "list", "-o", "json").stdout) == []
    again = cli(url, "override", "remove", str(override_id), "--as", "erin")
    assert again.exit_code == 1 and f"no override #{override_id}" in again.output
    after = json.loads(cli(url, "oncall", "--at", during, "--role", "primary", "-o", "json").stdout)
    assert after[0]["people"] != ["carla"] and after[0]["override"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch", "bob", "--until", "+2h"], "unknown rotation 'nosuch'"),
        (["primary", "zoe", "--until", "+2h"], "unknown person 'zoe'"),
        (["primary", "bob", "--from", "+3h", "--until", "+2h"], "must be after --from"),
        (["primary", "bob", "--from", "-3h", "--until", "-2h"], "already past"),
        (["primary", "bob", "--until", "tuesday"], "ISO 8601"),
    ],
)
def test_override_add_is_validated_against_the_config(
    sqlite_url: str, args: list[str], message: str
) -> None:
    url = migrated(sqlite_url)
    result = cli(url, "override", "add", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert json.loads(cli(url, "override", "list", "-o", "json").stdout) == []


def test_override_needs_a_current_schema(tmp_path: Path) -> None:
    result = cli(
        f"sqlite:///{tmp_path / 'empty.db'}", "override", "add", "primary", "bob", "--until", "+1h"
    )
    assert result.exit_code == 1
    assert "escalator db upgrade" in result.output


# schedule and iCal ---------------------------------------------------------------------------


def test_schedule_table_marks_overrides_and_crosses_dst(sqlite_url: str) -> None:
    url = migrated(sqlite_url)
    added = cli(
        url,
        "override",
        "add",
        "primary",
        "carla",
        "--from",
        "2030-03-10T18:00:00-04:00",
        "--until",
        "2030-03-11T12:00:00-04:00",
    )
    assert added.exit_code == 0, added.output
    args = ["schedule", "primary", "--from", "2030-03-04T00:00Z", "--until", "2030-03-19T00:00Z"]
    table = cli(url, *args)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ROTATION", "FROM", "UNTIL", "WHO", "NOTE"]
    body = [line.split() for line in lines[1:]]
    # 2030-03-10 is the US spring change: the EST shift ends at Monday 09:00 EDT.
    assert body[0][1:5] == ["Mon", "2030-02-25", "09:00", "EST"]
    assert body[1][1:9] == [
        "Mon",
        "2030-03-04",
        "09:00",
        "EST",
        "Sun",
        "2030-03-10",
        "18:00",
        "EDT",
    ]
    assert body[2][9] == "carla" and body[2][10:] == ["override", "#1"]
    assert body[3][1:5] == ["Mon", "2030-03-11", "12:00", "EDT"]
    assert body[3][5:9] == ["Mon", "2030-03-18", "09:00", "EDT"]
    assert body[1][9] != body[3][9]  # the handoff happened under the override

    rows = json.loads(cli(url, *args, "-o", "json").stdout)
    assert [r["override"] for r in rows] == [False, False, True, False, False]
    assert rows[2]["start"] == "2030-03-10T22:00:00Z" and rows[2]["override_id"] == 1


def test_ical_export_parses_back(sqlite_url: str) -> None:
    url = migrated(sqlite_url)
    result = cli(
        url, "schedule", "--ical", "--from", "2026-03-02T12:00Z", "--until", "2026-03-30T12:00Z"
    )
    assert result.exit_code == 0, result.output
    cal = Calendar.from_ical(result.stdout_bytes)
    assert str(cal["version"]) == "2.0"
    events = cal.walk("VEVENT")
    got = [(e.decoded("dtstart"), e.decoded("dtend"), str(e["summary"])) for e in events]
    # Whole shifts: the one running at --from began the Monday before.
    assert [g[0] for g in got] == [
        datetime(2026, 2, 23, 14, tzinfo=UTC),  # 09:00 EST
        datetime(2026, 3, 2, 14, tzinfo=UTC),
        datetime(2026, 3, 9, 13, tzinfo=UTC),  # 09:00 EDT after the change
        datetime(2026, 3, 16, 13, tzinfo=UTC),
        datetime(2026, 3, 23, 13, tzinfo=UTC),
    ]
    assert got[-1][1] == datetime(2026, 3, 30, 13, tzinfo=UTC)
    assert all(a[1] == b[0] for a, b in pairwise(got))
    assert got[1][2] == "On-call engineer: Alice Oncall"
    assert got[2][2] == "On-call engineer: Bob Oncall"
    uids = [str(e["uid"]) for e in events]
    assert len(set(uids)) == len(uids)
    assert uids[1] == "primary-alice-20260302T140000Z@escalator"


def test_oncall_role_filter(sqlite_url: str) -> None:
    url = migrated(sqlite_url)
    shown = cli(url, "oncall", "--at", "2026-03-04T03:00Z", "--role", "devops")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1:] == [
        "KIND  NAME    WHO         UNTIL",
        "role  devops  dave, dana  -",
    ]
    unknown = cli(url, "oncall", "--role", "nosuch")
    assert unknown.exit_code == 2 and "no role or rotation 'nosuch'" in unknown.output


def test_check_config_warns_of_gaps(tmp_path: Path) -> None:
    text = SHIPPED_CONFIG.read_text()
    gappy = text.replace(
        "    members: [alice, bob]\n",
        "    members: [alice, bob]\n"
        '    restrictions: [{days: weekdays, from: "09:00", to: "17:00"}]\n',
    )
    assert gappy != text
    path = tmp_path / "gappy.yaml"
    path.write_text(gappy)
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "reaches nobody" in line]
    subjects = {line.split(": warning: ")[1].split(" reaches")[0] for line in warnings}
    assert subjects == {"rotation primary", "policy warning level 1"}
    clean = CliRunner().invoke(main, ["check-config", str(SHIPPED_CONFIG)])
    assert clean.exit_code == 0 and "reaches nobody" not in clean.output


# The calendar URL ----------------------------------------------------------------------------


def test_calendar_url_needs_the_api_token(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_API_TOKEN", "cal-token")
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", "hook-token")
    clock = FixedClock(datetime(2026, 3, 4, 12, tzinfo=UTC))
    daemon = build_daemon(shipped_config(), sqlite_url, clock=clock, channels={})
    try:
        with running_server(create_app(daemon, run_engine=False)) as url:
            feed = f"{url}/api/v1/calendar/primary.ics"
            assert httpx.get(feed).status_code == 401
            wrong = httpx.get(feed, headers={"Authorization": "Bearer cal-tokeX"})
            assert wrong.status_code == 401
            hook = httpx.get(feed, headers={"Authorization": "Bearer hook-token"})
            assert hook.status_code == 401  # the webhook token is not an API token
            auth = {"Authorization": "Bearer cal-token"}
            ok = httpx.get(feed, headers=auth, params={"weeks": 2})
            assert ok.status_code == 200
            assert ok.headers["content-type"].startswith("text/calendar")
            events = Calendar.from_ical(ok.content).walk("VEVENT")
            starts = [e.decoded("dtstart") for e in events]
            # A week back and two ahead from Wednesday 2026-03-04.
            assert starts == [
                datetime(2026, 2, 23, 14, tzinfo=UTC),
                datetime(2026, 3, 2, 14, tzinfo=UTC),
                datetime(2026, 3, 9, 13, tzinfo=UTC),
                datetime(2026, 3, 16, 13, tzinfo=UTC),
            ]
            assert httpx.get(f"{url}/api/v1/calendar/nosuch.ics", headers=auth).status_code == 404
    finally:
        daemon.stop()


# Shift-change notices --------------------------------------------------------------------------


def notice_rows(factory) -> list[OutboxRow]:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(OutboxRow).where(OutboxRow.reason == REASON).order_by(OutboxRow.id)
            )
        )


def test_due_notices_are_pure_and_respect_lead_and_catch_up() -> None:
    cfg = shipped_config()
    assert due_notices(cfg, HANDOFF - timedelta(minutes=16), []) == []
    [notice] = due_notices(cfg, HANDOFF - timedelta(minutes=15), [])
    assert (notice.person, notice.start, notice.end) == (
        "bob",
        HANDOFF,
        HANDOFF + timedelta(days=7),
    )
    assert due_notices(cfg, HANDOFF + timedelta(minutes=59), []) == [notice]
    assert due_notices(cfg, HANDOFF + timedelta(minutes=61), []) == []
    # An override starting soon is a shift of its own; one for the holder is no change.
    cover = Override("primary", "carla", HANDOFF + timedelta(days=2), HANDOFF + timedelta(days=3))
    same = Override("primary", "bob", HANDOFF + timedelta(days=4), HANDOFF + timedelta(days=5))
    at = HANDOFF + timedelta(days=2, minutes=-5)
    assert [n.person for n in due_notices(cfg, at, [cover, same])] == ["carla"]
    assert due_notices(cfg, HANDOFF + timedelta(days=4, minutes=-5), [cover, same]) == []
    quiet = parse_config(
        SHIPPED_CONFIG.read_text().replace(
            "    members: [alice, bob]\n", "    members: [alice, bob]\n    shift_notice: null\n"
        )
    )
    assert due_notices(quiet, HANDOFF, []) == []


def test_shift_notice_text_is_a_template_overridable_per_method(sqlite_url: str) -> None:
    """`channels.templates.email.shift_notice` replaces the shipped shift_notice.j2 for
    email only (issue 9: one rendering system)."""
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    override = "{{ person }} takes {{ rotation.id }} at {{ shift.start_utc }}\nBe ready."
    data["channels"] = {"templates": {"email": {"shift_notice": {"text": override}}}}
    cfg = parse_config(yaml.safe_dump(data))
    engine = make_engine(migrated(sqlite_url))
    try:
        ShiftNotices(session_factory(engine), cfg, frozenset({"email"}), timedelta(0)).run(
            HANDOFF - timedelta(minutes=10)
        )
        (row,) = notice_rows(session_factory(engine))
        assert row.payload["text"] == "bob takes primary at 2026-03-09T13:00Z\nBe ready."
        assert row.payload["subject"] == "bob takes primary at 2026-03-09T13:00Z"
    finally:
        engine.dispose()


def test_shift_notice_once_per_shift_across_restarts_and_replicas(database_url: str) -> None:
    url = migrated(database_url)
    engine = make_engine(url)
    factory = session_factory(engine)
    cfg = shipped_config()
    methods = frozenset({"sms", "voice", "email"})
    try:
        first = ShiftNotices(factory, cfg, methods, interval=timedelta(0))
        assert first.run(HANDOFF - timedelta(minutes=10)) == 1
        assert first.run(HANDOFF - timedelta(minutes=5)) == 0
        # A restarted process and a second replica know nothing in memory.
        for _ in range(2):
            fresh = ShiftNotices(factory, cfg, methods, interval=timedelta(0))
            assert fresh.run(HANDOFF + timedelta(minutes=30)) == 0
        rows = notice_rows(factory)
        # Bob's notify rule (the default) is email; one row, to him, about his shift.
        assert [(r.recipient, r.method, r.urgency, r.alert_id, r.level) for r in rows] == [
            ("bob", "email", "notify", None, None)
        ]
        assert rows[0].address == "bob@credlink.example"
        assert rows[0].payload["shift_start"] == HANDOFF.isoformat()
        # Bob lives in Berlin: his notice speaks his time.
        subject = rows[0].payload["subject"]
        assert subject == (
            "On call: On-call engineer from Mon 2026-03-09 14:00 CET to Mon 2026-03-16 14:00 CET"
        )
        assert rows[0].payload["text"].startswith(subject + "\nYou are on call for")
        assert rows[0].due_at == HANDOFF - timedelta(minutes=10)
        # The next handoff is a new shift and a new notice.
        assert first.run(HANDOFF + timedelta(days=7, minutes=-1)) == 1
        assert [r.recipient for r in notice_rows(factory)] == ["bob", "alice"]
    finally:
        engine.dispose()


def test_concurrent_replicas_write_one_notice(pg_url: str) -> None:
    engine = make_engine(migrated(pg_url))
    factory = session_factory(engine)
    cfg = shipped_config()
    methods = frozenset({"email"})
    at = HANDOFF - timedelta(minutes=3)
    notices = due_notices(cfg, at, [])
    barrier = threading.Barrier(4)
    written: list[int] = []

    def replica() -> None:
        barrier.wait(timeout=30)
        with transaction(factory) as session:
            written.append(len(create_notices(session, cfg, methods, at, notices)))

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert sorted(written) == [0, 0, 0, 1]
        assert len(notice_rows(factory)) == 1
    finally:
        engine.dispose()


def test_engine_tick_sends_the_notice(sqlite_url: str) -> None:
    from tests.support.rig import Recorder

    clock = FixedClock(HANDOFF - timedelta(minutes=15))
    recorder = Recorder("email")
    daemon = build_daemon(shipped_config(), sqlite_url, clock=clock, channels={"email": recorder})
    try:
        daemon.engine.tick()
        daemon.sender.drain()
        assert [(d.recipient, d.method, d.reason) for d, _ in recorder.sent] == [
            ("bob", "email", REASON)
        ]
        message = recorder.sent[0][1]  # what the email channel was asked to send
        assert message.title.startswith("On call: On-call engineer from Mon 2026-03-09")
        assert "You are on call for On-call engineer (rotation primary)" in message.body
        clock.advance(minutes=20)
        daemon.engine.tick()
        daemon.sender.drain()
        assert len(recorder.sent) == 1
        assert [r.status for r in notice_rows(daemon.factory)] == ["sent"]
    finally:
        daemon.stop()
