"""`escalator heartbeat list` and `escalator maintenance add|list|end` on the database, and
the 0005 migration against the tables the code declares."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner, Result

from escalator.cli.main import main
from escalator.store.db import make_engine, upgrade
from escalator.store.tables import Base
from tests.support.helpers import SHIPPED_CONFIG, am_alert, outbox_rows
from tests.support.rig import Rig


def cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(SHIPPED_CONFIG), "--database-url", url, *args])


def test_maintenance_commands_on_the_database(sqlite_url: str) -> None:
    # The CLI reads the real clock, so the rig's fixed clock starts at real time too.
    rig = Rig(sqlite_url, start=datetime.now(UTC))  # the CLI works on the same file
    try:
        (open_id,) = rig.fire(am_alert("o1", service="payments")).opened
        rig.step()
        added = cli(
            sqlite_url, "maintenance", "add", "--match", "service=payments",
            "--match-re", "instance=api-.*", "--for", "2h", "--reason", "failover",
            "--as", "erin", "--include-open", "-o", "json",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        created: dict[str, Any] = json.loads(added.output)
        assert created["held"] == [open_id]
        assert all(r.status != "pending" for r in outbox_rows(rig.factory, open_id))
        listed = cli(sqlite_url, "maintenance", "list")
        assert listed.exit_code == 0, listed.output
        assert created["id"] in listed.output and "service=payments" in listed.output
        assert "instance=~api-.*" in listed.output and "erin" in listed.output
        ended = cli(sqlite_url, "maintenance", "end", created["id"], "--as", "erin")
        assert ended.exit_code == 0, ended.output
        assert "ended" in ended.output
        # The engine lets the held alert escalate again from level 0.
        rig.clock.current = datetime.now(UTC)
        assert [(d.alert_id, d.level) for d in rig.step()][:1] == [(open_id, 0)]
        assert "no maintenance windows" in cli(sqlite_url, "maintenance", "list").output
        everything = json.loads(
            cli(sqlite_url, "maintenance", "list", "--all", "-o", "json").output
        )
        assert [(w["id"], w["state"], w["ended_by"]) for w in everything] == [
            (created["id"], "ended", "erin")
        ]
    finally:
        rig.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--match", "service=x", "--reason", "r"], "exactly one of --for or --until"),
        (["--match", "service=x", "--for", "2h", "--until", "+1h", "--reason", "r"], "exactly"),
        (["--for", "2h", "--reason", "r"], "at least one --match"),
        (["--match", "service", "--for", "2h", "--reason", "r"], "LABEL=VALUE"),
        (["--match-re", "service=(", "--for", "2h", "--reason", "r"], "regular expression"),
        (["--match", "service=x", "--for", "soon", "--reason", "r"], "invalid duration"),
        (["--match", "service=x", "--until", "-1h", "--reason", "r"], "in the future"),
        (["--match", "service=x", "--for", "40d", "--reason", "r"], "within 31 days"),
        (["--match", "service=x", "--for", "2h", "--reason", "r", "--as", "zed"], "unknown"),
    ],
)
def test_maintenance_add_refuses_bad_input(sqlite_url: str, args: list[str], message: str) -> None:
    upgrade(make_engine(sqlite_url))
    who = [] if "--as" in args else ["--as", "erin"]  # the service layer's actor rule
    result = cli(sqlite_url, "maintenance", "add", *args, *who)
    assert result.exit_code != 0
    assert message in result.output
    assert "no maintenance windows" in cli(sqlite_url, "maintenance", "list").output


def test_maintenance_end_of_an_unknown_window(sqlite_url: str) -> None:
    upgrade(make_engine(sqlite_url))
    missing = cli(sqlite_url, "maintenance", "end", "7", "--as", "erin")
    assert missing.exit_code != 0 and "no maintenance window 7" in missing.output
    weekly = cli(sqlite_url, "maintenance", "end", "config:sunday")
    assert weekly.exit_code != 0 and "end on their own" in weekly.output


def test_heartbeat_list(sqlite_url: str) -> None:
    upgrade(make_engine(sqlite_url))
    shown = json.loads(cli(sqlite_url, "heartbeat", "list", "-o", "json").output)
    assert [(h["name"], h["state"], h["fed_by"], h["last_beat_at"]) for h in shown] == [
        ("watchdog", "waiting", ["alertmanager"], None)
    ]
    table = cli(sqlite_url, "heartbeat", "list").output
    assert "watchdog" in table and "waiting" in table and "alertmanager" in table


def test_migration_0005_creates_what_the_code_declares(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    mine = {"heartbeats", "maintenance_windows", "alert_suppressions", "change_events"}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(entry: Any) -> str | None:
        item = entry[0] if isinstance(entry, list) else entry
        for part in item[1:]:
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if table is not None and table.name in mine:
                return str(table.name)
            if name in mine:
                return str(name)
        return None

    assert [d for d in diff if table_of(d) is not None] == []
    engine.dispose()


def test_source_secrets_without_a_value(
    tmp_path: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.delenv("E2E_NO_SUCH_TOKEN", raising=False)
    monkeypatch.delenv("E2E_NO_SUCH_KEY", raising=False)
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["heartbeats"].append(
        {"name": "backup", "interval": "1h", "token": {"env": "E2E_NO_SUCH_TOKEN"}}
    )
    data["integrations"] = [{"name": "grafana", "key": {"env": "E2E_NO_SUCH_KEY"}}]
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data))
    checked = CliRunner().invoke(main, ["check-config", str(path)])
    assert checked.exit_code == 1, checked.output  # serve would refuse: so does check-config
    assert "heartbeats.backup.token: $E2E_NO_SUCH_TOKEN has no value" in checked.output
    assert "integrations.grafana.key: $E2E_NO_SUCH_KEY has no value" in checked.output
    # The daemon refuses to start rather than turn every sender away at 3 a.m.
    served = CliRunner().invoke(
        main, ["--config", str(path), "--database-url", sqlite_url, "serve"]
    )
    assert served.exit_code == 1
    assert "integrations.grafana.key: $E2E_NO_SUCH_KEY has no value" in served.output
