"""The CLI's rough edges (issue 12): bad database URLs, verbs that must not create files,
`#N` ids, long lists, one rule for times, the next page that really fires, updates that do
what they say, one actor rule, help that documents every option and verb, test-page.

Against real databases (a SQLite file; PostgreSQL where the URL form matters) and a real
daemon on loopback for `--server`.
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from escalator.cli.main import main
from escalator.cli.support import BadDatabaseUrl, normalize_database_url
from escalator.config import Policy, load_config
from escalator.daemon import build_daemon
from escalator.escalation.machine import AlertState, next_escalation
from escalator.services import actors
from escalator.store.db import make_engine, session_factory, upgrade
from escalator.store.tables import AlertRow, IncidentRow
from escalator.web.app import create_app
from tests.support.helpers import ROOT, SHIPPED_CONFIG, T0, alert_rows, am_alert
from tests.support.rig import Recorder, Rig
from tests.support.servers import running_server

CONFIG = str(SHIPPED_CONFIG)
TRACEBACK = "Traceback"


def cli(
    url: str | None, *args: str, env: dict[str, str | None] | None = None, config: bool = True
) -> Result:
    """`escalator` in process; an exception escaping click fails the test (no traceback
    may reach a user)."""
    base = ["--config", CONFIG] if config else []
    if url is not None:
        base += ["--database-url", url]
    return CliRunner().invoke(
        main,
        [*base, *args],
        env={
            "ESCALATOR_SERVER": None,
            "ESCALATOR_API_TOKEN": None,
            "ESCALATOR_DATABASE_URL": None,
            "ESCALATOR_CONFIG": None,
            "ESCALATOR_USER": None,
            "ESCALATOR_TZ": None,
            **(env or {}),
        },
        catch_exceptions=False,
    )


def one_line_error(result: Result) -> str:
    """The error of a refused command: one line, no traceback, no usage text."""
    assert TRACEBACK not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def opened(sqlite_url: str) -> Iterator[tuple[str, list[int]]]:
    """Two triggered critical alerts (each with its incident) opened at T0."""
    rig = Rig(sqlite_url)
    ids = rig.fire(
        am_alert(fingerprint="eeee000000000001", instance="api-1"),
        am_alert(fingerprint="eeee000000000002", instance="api-2", alertname="CredLinkDBDown"),
    ).opened
    rig.close()
    yield sqlite_url, ids


def read_rows(url: str) -> dict[int, AlertRow]:
    engine = make_engine(url)
    try:
        return {row.id: row for row in alert_rows(session_factory(engine))}
    finally:
        engine.dispose()


# Database URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "is not a database URL"),
        ("mysql://user@db.example/escalator", "mysql is not supported"),
        ("postgresql+psycopg2://u@h/db", "psycopg2"),
    ],
)
def test_a_database_url_escalator_cannot_use_is_one_clean_line(url: str, says: str) -> None:
    for how in ("option", "environment"):
        result = (
            cli(url, "list")
            if how == "option"
            else cli(None, "list", env={"ESCALATOR_DATABASE_URL": url})
        )
        assert result.exit_code == 2, result.output
        assert says in one_line_error(result)


def test_postgres_scheme_means_postgresql_through_psycopg(pg_server_url: str) -> None:
    assert normalize_database_url("postgres://u:pw@h:5432/db") == (
        "postgresql+psycopg://u:pw@h:5432/db"
    )
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(BadDatabaseUrl):
        normalize_database_url("oracle://u@h/db")
    # The real server, named the way psql and most tools name it.
    url = make_url(pg_server_url)
    plain = url.set(drivername="postgres").render_as_string(hide_password=False)
    assert plain.startswith("postgres://")
    upgrade(make_engine(pg_server_url))
    result = cli(plain, "list", "-o", "json")
    assert result.exit_code == 0, result.output


def test_serve_refuses_a_port_out_of_range() -> None:
    result = cli(None, "serve", "--port", "99999")
    assert result.exit_code == 2
    assert TRACEBACK not in result.output
    assert "99999 is not in the range 1<=x<=65535" in result.output


# Verbs that read create nothing -----------------------------------------------------------


@pytest.mark.parametrize(
    "verb",
    [
        ["list"],
        ["show", "1"],
        ["ack", "1", "--as", "alice"],
        ["override", "list"],
        ["postmortems"],
        ["report"],
        ["heartbeat", "list"],
        ["maintenance", "list"],
    ],
)
def test_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path, verb: list[str]) -> None:
    folder = tmp_path / "typo"
    url = f"sqlite:///{folder / 'escalator.db'}"
    result = cli(url, *verb)
    assert result.exit_code == 1, result.output
    line = one_line_error(result)
    assert "does not exist" in line and "schema is at nothing" not in line
    assert not folder.exists()  # neither the database nor its folder


def test_db_upgrade_still_creates_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'escalator.db'}"
    assert cli(url, "db", "upgrade").exit_code == 0
    assert cli(url, "list").output == "no open alerts\n"


# #N ids ----------------------------------------------------------------------------------


def test_ids_as_the_tables_print_them(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    shown = cli(url, "show", f"#{first}", "-o", "json")
    assert shown.exit_code == 0 and json.loads(shown.output)["id"] == first
    acked = cli(url, "ack", f"#{first}", "--as", "alice")
    assert acked.exit_code == 0 and acked.output.startswith(f"ok #{first}: acknowledged")
    resolved = cli(url, "resolve", f"#{second}", str(first), "--as", "alice")
    assert resolved.exit_code == 0, resolved.output
    assert {r.status for r in read_rows(url).values()} == {"resolved"}
    bad = cli(url, "ack", "#one", "--as", "alice")
    assert bad.exit_code == 2 and "'#one' is not an id" in bad.output


# Long lists ------------------------------------------------------------------------------


def test_list_says_when_it_is_cut_and_pages_through_the_api(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(sqlite_url)
    rig.fire(*(am_alert(fingerprint=f"ffff{i:012d}", instance=f"h-{i}") for i in range(7)))
    rig.close()
    cut = CliRunner().invoke(
        main, ["--config", CONFIG, "--database-url", sqlite_url, "list", "--limit", "5"]
    )
    assert cut.exit_code == 0
    assert len([ln for ln in cut.stdout.splitlines() if ln.startswith("#")]) == 5
    assert "showing the newest 5 of 7 open alerts; use --limit 7" in cut.stderr
    everything = cli(sqlite_url, "list", "--limit", "0", "-o", "json")
    assert len(json.loads(everything.output)) == 7

    monkeypatch.setenv("ESCALATOR_API_TOKEN", "api-token")
    daemon = build_daemon(load_config(CONFIG), sqlite_url, channels={"console": Recorder()})
    try:
        with running_server(create_app(daemon)) as server:
            auth = {"Authorization": "Bearer api-token"}
            page = httpx.get(f"{server}/api/v1/alerts?limit=3&offset=3", headers=auth)
            assert page.status_code == 200
            assert page.headers["X-Total-Count"] == "7"
            ids = [a["id"] for a in page.json()]
            assert ids == sorted(ids, reverse=True) and len(ids) == 3
            too_big = httpx.get(f"{server}/api/v1/alerts?limit=999999", headers=auth)
            assert too_big.status_code == 422
            spec = httpx.get(f"{server}/openapi.json").json()
            described = {p["name"] for p in spec["paths"]["/api/v1/alerts"]["get"]["parameters"]}
            assert {"limit", "offset", "all"} <= described
            remote = ["--server", server, "--token", "api-token"]
            nowhere = "sqlite:////nonexistent/escalator.db"
            listed = CliRunner().invoke(
                main, ["--config", CONFIG, "--database-url", nowhere, *remote, "list", "--limit",
                       "4", "-o", "json"],
            )  # fmt: skip
            assert len(json.loads(listed.stdout)) == 4
            assert "showing the newest 4 of 7" in listed.stderr
            paged = cli(nowhere, *remote, "list", "--limit", "0", "-o", "json")
            assert len(json.loads(paged.output)) == 7
    finally:
        daemon.db.dispose()


# Times -----------------------------------------------------------------------------------

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ISO_ANY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _times(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [t for v in data.values() for t in _times(v)]
    if isinstance(data, list):
        return [t for v in data for t in _times(v)]
    return [data] if isinstance(data, str) and ISO_ANY.match(data) else []


def test_json_times_are_rfc3339_utc_with_z(opened: tuple[str, list[int]]) -> None:
    url, (first, _) = opened
    assert cli(url, "override", "add", "primary", "carla", "--until", "+2h",
               "--as", "erin").exit_code == 0  # fmt: skip
    found: list[str] = []
    for verb in (
        ["list"],
        ["show", str(first)],
        ["override", "list"],
        ["override", "add", "primary", "bob", "--until", "+3h", "--as", "erin"],
        ["schedule", "--until", "+2d"],
        ["maintenance", "add", "--match", "service=x", "--for", "1h", "--reason", "r",
         "--as", "erin"],
        ["maintenance", "list"],
        ["oncall"],
    ):  # fmt: skip
        result = cli(url, *verb, "-o", "json")
        assert result.exit_code == 0, (verb, result.output)
        found += _times(json.loads(result.output))
    assert len(found) > 20
    assert [t for t in found if not RFC3339_Z.match(t)] == []
    shown = json.loads(cli(url, "show", str(first), "-o", "json").output)
    # Alertmanager's startsAt, beside the time escalator received the alert.
    assert shown["starts_at"].startswith("2026-03-02T18:59:47.123456")
    assert shown["opened_at"] == "2026-03-02T19:00:00Z"


def test_tables_show_local_times_in_the_zone_asked_for(opened: tuple[str, list[int]]) -> None:
    url, (first, _) = opened
    shown = cli(url, "--tz", "America/New_York", "show", str(first)).output
    # 19:00 UTC on 2 March is 14:00 EST; the timeline stamps carry the zone's offset.
    assert "opened:  Mon 2026-03-02 14:00:00 EST" in shown
    assert "started: Mon 2026-03-02 13:59:47 EST" in shown
    assert "2026-03-02T14:00:00-05:00" in shown
    assert ".123456" not in shown and "+00:00" not in shown
    listed = cli(url, "--tz", "Asia/Tokyo", "list").output
    assert "Tue 2026-03-03 04:00 JST" in listed and " ago)" in listed
    # The zone of the person the CLI acts as, from the configuration, without --tz.
    alice_zone = load_config(CONFIG).person("alice").timezone  # type: ignore[union-attr]
    by_person = cli(url, "list", env={"ESCALATOR_USER": "alice"}).output
    expected = datetime(2026, 3, 2, 19, tzinfo=UTC).astimezone(_zone(alice_zone))
    assert expected.strftime("%a %Y-%m-%d %H:%M %Z") in by_person
    bad = cli(url, "--tz", "Mars/Olympus", "list")
    assert bad.exit_code == 2 and "unknown time zone" in bad.output


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


# What really fires next ------------------------------------------------------------------


def _policy() -> Policy:
    return Policy.model_validate(
        {
            "steps": [
                {"after": "0s", "targets": [{"person": "a"}]},
                {"after": "5m", "condition": "unacknowledged", "targets": [{"person": "b"}]},
                {"after": "15m", "condition": "unresolved", "targets": [{"person": "c"}]},
            ],
            "repeat": {"every": "10m", "times": 2},
        }
    )


def test_next_escalation_skips_what_an_ack_makes_moot() -> None:
    policy = _policy()
    triggered = AlertState(opened_at=T0, clock_base=T0, next_step=1, level=0)
    upcoming = next_escalation(triggered, policy)
    assert upcoming is not None and (upcoming.level, upcoming.kind) == (1, "step")
    assert upcoming.at == T0 + timedelta(minutes=5)
    acked = AlertState(
        opened_at=T0, clock_base=T0, status="acknowledged", next_step=1, level=0, acked_at=T0
    )
    upcoming = next_escalation(acked, policy)  # level 1 is unacknowledged-only: skipped
    assert upcoming is not None and (upcoming.level, upcoming.kind) == (2, "step")
    assert upcoming.at == T0 + timedelta(minutes=15)
    ends = T0 + timedelta(minutes=3)
    snoozed = AlertState(
        opened_at=T0, clock_base=T0, status="acknowledged", next_step=1, level=0,
        acked_at=T0, ack_expires_at=ends,
    )  # fmt: skip
    upcoming = next_escalation(snoozed, policy)
    assert upcoming is not None and (upcoming.at, upcoming.kind, upcoming.level) == (
        ends, "ack_ends", 0,
    )  # fmt: skip
    done = AlertState(opened_at=T0, clock_base=T0, next_step=3, level=2, repeats_done=2)
    assert next_escalation(done, policy) is None  # repeats used up
    # The repeat condition defaults to the last step's (unresolved): an ack does not stop it.
    last = AlertState(
        opened_at=T0, clock_base=T0, status="acknowledged", next_step=3, level=2, repeats_done=1
    )
    upcoming = next_escalation(last, policy)
    assert upcoming is not None and upcoming.kind == "repeat"
    assert upcoming.at == T0 + timedelta(minutes=15 + 20)


def test_list_and_show_name_the_step_that_will_fire_after_an_ack(
    opened: tuple[str, list[int]],
) -> None:
    url, (first, _) = opened
    before = json.loads(cli(url, "show", str(first), "-o", "json").output)
    assert before["next_escalation"] == {"at": "2026-03-02T19:05:00Z", "level": 1, "kind": "step"}
    assert cli(url, "ack", str(first), "--as", "alice").exit_code == 0
    after = json.loads(cli(url, "show", str(first), "-o", "json").output)
    # The shipped critical policy: level 1 (5m) is unacknowledged-only, level 2 (15m) fires.
    assert after["next_escalation"] == {"at": "2026-03-02T19:15:00Z", "level": 2, "kind": "step"}
    row = [ln for ln in cli(url, "list").output.splitlines() if ln.startswith(f"#{first} ")]
    assert "L2 " in row[0] and "L1 " not in row[0]
    assert "next escalation: L2 " in cli(url, "show", str(first)).output


# Incident updates do what they say -------------------------------------------------------


def test_update_resolved_resolves_and_a_resolved_incident_takes_no_update(
    opened: tuple[str, list[int]],
) -> None:
    url, (first, second) = opened
    env = {"ESCALATOR_USER": "alice"}
    done = cli(url, "update", f"#{first}", "Fixed the pool", "--status", "resolved", env=env)
    assert done.exit_code == 0, done.output
    assert "alert resolved" in done.output
    row = read_rows(url)[first]
    assert (row.status, row.resolved_by) == ("resolved", "alice")
    engine = make_engine(url)
    with session_factory(engine)() as session:
        incident = session.get(IncidentRow, first)
        assert incident is not None and incident.status == "resolved"
    engine.dispose()
    late = cli(url, "update", str(first), "still looking", env=env)
    assert late.exit_code == 1
    assert "is resolved: it takes no more status updates" in one_line_error(late)
    assert cli(url, "resolve", str(second), "--as", "bob").exit_code == 0
    also_late = cli(url, "update", str(second), "x", "--status", "MONITORING", env=env)
    assert also_late.exit_code == 1 and "no more status updates" in also_late.output


# One actor rule --------------------------------------------------------------------------


def test_actor_rule_is_the_same_for_every_source_and_verb(
    opened: tuple[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, (first, _) = opened
    as_root = cli(url, "ack", str(first), "--as", "root")
    assert as_root.exit_code == 2 and "unknown person 'root'" in as_root.output
    login_root = cli(url, "ack", str(first), env={"ESCALATOR_USER": "root"})
    assert login_root.exit_code == 1 and "unknown person 'root'" in login_root.output
    override = cli(url, "override", "add", "primary", "carla", "--until", "+2h", "--as", "root")
    assert override.exit_code == 2 and "unknown person 'root'" in override.output
    maintenance = cli(url, "maintenance", "add", "--match", "a=b", "--for", "1h", "--reason",
                      "r", env={"ESCALATOR_USER": "root"})  # fmt: skip
    assert maintenance.exit_code == 1 and "unknown person 'root'" in maintenance.output
    assert read_rows(url)[first].status == "triggered"  # nothing recorded
    # Without a configuration a name is still checked: it must look like a person id.
    no_config = cli(url, "ack", str(first), "--as", "rm -rf", config=False)
    assert no_config.exit_code == 2 and "not a person id" in no_config.output
    with pytest.raises(actors.UnknownActor):
        actors.check(None, "")
    actors.check(None, "root")  # no people to check against: any person id
    # Through the API: the service refuses the same names.
    monkeypatch.setenv("ESCALATOR_API_TOKEN", "api-token")
    daemon = build_daemon(load_config(CONFIG), url, channels={"console": Recorder()})
    try:
        with running_server(create_app(daemon)) as server:
            auth = {"Authorization": "Bearer api-token"}
            for by in ("root", "rm -rf"):
                refused = httpx.post(
                    f"{server}/api/v1/alerts/ack", json={"ids": [first], "by": by}, headers=auth
                )
                assert refused.status_code in (400, 403, 422), refused.text
            remote = cli(
                "sqlite:////nonexistent/x.db", "--server", server, "--token", "api-token",
                "ack", str(first), env={"ESCALATOR_USER": "root"},
            )  # fmt: skip
            assert remote.exit_code == 1 and "unknown person 'root'" in remote.output
    finally:
        daemon.db.dispose()


# Help, README and output formats ---------------------------------------------------------


def _verbs(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _verbs(command, f"{prefix}{name} ")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_verb_is_in_the_readme_cli_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## CLI reference") :]
    section = section[: section.index("\n## ", 3)]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    documented = {re.match(r"\| `([a-z -]+?)(?: [A-Z\[(-].*)?`", ln).group(1) for ln in rows}  # type: ignore[union-attr]
    missing = [verb for verb in _verbs(main) if verb not in documented]
    assert missing == [], f"README CLI reference misses {missing}"


def test_every_option_has_help_and_globals_name_their_variables() -> None:
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Option]]:
        for param in command.params:
            if isinstance(param, click.Option):
                yield path, param
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    undocumented = [
        f"{path} {param.opts[0]}"
        for path, param in walk(main, "escalator")
        if not param.help
        and param.opts[0] not in ("--help", "-h")
        # -o/--output, --as and --version carry their help through a shared decorator
        and param.name not in ("version",)
    ]
    assert undocumented == []
    text = cli(None, "--help").output
    for variable in ("ESCALATOR_CONFIG", "ESCALATOR_DATABASE_URL", "ESCALATOR_SERVER",
                     "ESCALATOR_API_TOKEN", "ESCALATOR_TZ"):  # fmt: skip
        assert variable in text
    serve = cli(None, "serve", "--help").output
    assert "Address to listen on" in serve and "TCP port" in serve and "verbosity" in serve
    simulate = cli(None, "simulate", "--help").output
    assert "Who acknowledges" in simulate and "Stop the simulation" in simulate


def test_ack_resolve_and_escalate_print_json(opened: tuple[str, list[int]]) -> None:
    url, (first, second) = opened
    acked = cli(url, "ack", str(first), "--as", "alice", "-o", "json")
    assert acked.exit_code == 0
    assert json.loads(acked.output) == [
        {"alert_id": first, "changed": True, "message": "acknowledged by alice via cli",
         "status": "acknowledged"},
    ]  # fmt: skip
    escalated = json.loads(cli(url, "escalate", str(second), "--as", "bob", "-o", "json").output)
    assert escalated[0]["changed"] is True
    resolved = cli(url, "resolve", str(first), "4242", "--as", "alice", "-o", "json")
    assert resolved.exit_code == 1  # an unknown id, as in the table form
    assert [o["status"] for o in json.loads(resolved.output)] == ["resolved", "unknown"]


def test_schedule_ical_refuses_json(opened: tuple[str, list[int]]) -> None:
    url, _ = opened
    both = cli(url, "schedule", "--ical", "-o", "json")
    assert both.exit_code == 2 and "cannot also be -o json" in both.output
    ical = cli(url, "schedule", "--ical")
    assert ical.exit_code == 0 and ical.output.startswith("BEGIN:VCALENDAR")


# test-page -------------------------------------------------------------------------------


def test_test_page_skips_methods_without_a_channel(tmp_path: Path) -> None:
    from tests.fakes.fake_twilio import FakeTwilio
    from tests.support.rig import ACCOUNT_SID, ALICE, AUTH_TOKEN, FROM_NUMBER

    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    try:
        (tmp_path / "token").write_text(AUTH_TOKEN)
        config = tmp_path / "escalator.yaml"
        config.write_text(
            textwrap.dedent(
                f"""
                server: {{public_url: "https://escalator.example"}}
                people:
                  - id: alice
                    phone: "{ALICE}"
                    email: alice@example.com
                    rules:
                      page: [{{method: sms}}, {{method: voice}}, {{method: email}}]
                policies: {{p: {{steps: [{{targets: [{{person: alice}}]}}]}}}}
                channels:
                  twilio:
                    account_sid: {ACCOUNT_SID}
                    auth_token: {{file: {tmp_path / "token"}}}
                    from_number: "{FROM_NUMBER}"
                    api_base_url: {fake.base_url}
                """
            )
        )
        runner = CliRunner()
        result = runner.invoke(main, ["--config", str(config), "test-page", "alice"])
        assert result.exit_code == 0, result.output
        assert [line.split()[:2] for line in result.output.splitlines()] == [
            ["ok", "sms"],
            ["ok", "voice"],
            ["skipped", "email:"],
        ]
        asked = runner.invoke(
            main, ["--config", str(config), "test-page", "alice", "--method", "email"]
        )
        assert asked.exit_code == 1 and "no channel configured" in asked.output
    finally:
        fake.stop()


# Start-up ----------------------------------------------------------------------------------


def test_help_and_list_import_only_what_they_use(opened: tuple[str, list[int]]) -> None:
    """Measured in bench/cli_startup.py; asserted here by what is imported, which does not
    depend on how busy the machine is."""
    url, _ = opened
    probe = textwrap.dedent(
        """
        import sys
        from escalator.cli.main import main
        try:
            main(sys.argv[1:])
        except SystemExit:
            pass
        heavy = ("sqlalchemy", "alembic", "pydantic", "fastapi", "httpx", "uvicorn",
                 "jinja2", "twilio", "slack_sdk", "icalendar", "apscheduler",
                 # what `list` reads without: the config's root model, loader and
                 # channels (only policy snapshots are parsed), PostgreSQL's dialect
                 "escalator.config.model", "escalator.config.loader",
                 "escalator.config.channels", "sqlalchemy.dialects.postgresql")
        print(" ".join(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
        """
    )

    def imported(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, "--config", CONFIG, "--database-url", url, *args],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()

    assert imported("--help") == set()
    assert imported("list") <= {"sqlalchemy", "pydantic"}  # no Alembic, API or channels


def test_the_collector_is_tuned_only_when_escalator_is_its_own_process(
    opened: tuple[str, list[int]],
) -> None:
    """`escalator list` as a process runs without the cyclic collector (bench/cli_startup.py);
    the same verb called in-process (a test runner, CliRunner) leaves the caller's alone."""
    url, _ = opened
    gc.enable()
    done = CliRunner().invoke(main, ["--config", CONFIG, "--database-url", url, "list"])
    assert done.exit_code == 0, done.output
    assert gc.isenabled()
    probe = (
        "import gc, sys; from escalator.cli import main as m; "
        "m.main.add_command(__import__('click').command('probe')(lambda: "
        "print('collector', gc.isenabled())), 'probe'); sys.argv[1:] = ['probe']; m.run()"
    )
    own = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert own.stdout.strip() == "collector False", own.stderr


def test_who_acts_comes_from_as_then_the_environment_then_the_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert actors.requested("bob", {"ESCALATOR_USER": "alice"}) == ("bob", "--as")
    assert actors.requested(None, {"ESCALATOR_USER": "alice"}) == ("alice", "$ESCALATOR_USER")
    monkeypatch.setattr("getpass.getuser", lambda: "dave")
    assert actors.requested(None, {}) == ("dave", "login name")

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr("getpass.getuser", no_passwd_entry)
    assert actors.requested(None, {}) == ("", "login name")
    with pytest.raises(actors.UnknownActor):
        actors.check(None, "")
