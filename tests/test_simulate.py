"""`escalator simulate` against the seed's matrix, and against the daemon itself.

The shipped CredLink configuration must page: the on-call engineer at 0, the engineering
lead at 5 minutes (unacknowledged only), the DevOps team at 15, the CTO at 30 and the
emergency contact after that (at 45, then repeating) while the service is still down.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from escalator.cli.main import main
from escalator.config import Config
from escalator.escalation.machine import Ack
from escalator.read.simulate import run
from escalator.roster.oncall import Override
from escalator.store.db import make_engine, transaction, upgrade
from escalator.store.tables import OutboxRow, OverrideRow
from tests.support.helpers import SHIPPED_CONFIG, T0, am_alert, outbox_rows, shipped_config
from tests.support.rig import Rig

ALL = frozenset({"sms", "voice", "email", "chat", "console"})
MATRIX = [
    (0, 0, "alice"),  # on-call engineer (alice holds the primary rotation the week of T0)
    (0, 0, "incidents"),  # and Slack #incidents
    (5, 1, "erin"),  # engineering lead
    (15, 2, "dave"),  # DevOps team
    (15, 2, "dana"),
    (30, 3, "carla"),  # CTO
    (45, 4, "emergency"),  # emergency contact, repeated every 15 min while unacknowledged
]
REPEATS = [
    (60, 4, "emergency"),
    (75, 4, "emergency"),
    (90, 4, "emergency"),
    (105, 4, "emergency"),
]


def first_pages(cfg: Config, **kwargs: object) -> list[tuple[int, int, str]]:
    """(minute, level, recipient) of each page's first delivery, in order."""
    scenario = run(cfg, "critical", T0, ALL, **kwargs)  # type: ignore[arg-type]
    seen: dict[tuple[int, str, str], tuple[int, int, str]] = {}
    for event in scenario.pages():  # in time order: the first delivery of each page
        page = (event.level or 0, event.recipient or "", event.reason or "")
        minute = int(event.offset.total_seconds() // 60)
        seen.setdefault(page, (minute, event.level or 0, event.recipient or ""))
    return list(seen.values())


def test_shipped_matrix_without_ack() -> None:
    cfg = shipped_config()
    assert first_pages(cfg) == MATRIX + REPEATS
    scenario = run(cfg, "critical", T0, ALL)
    assert scenario.final_status == "triggered"
    # The person's contact rules decide the methods: SMS now, voice a minute later, email.
    alice = [(e.offset, e.method, e.address) for e in scenario.pages() if e.recipient == "alice"]
    assert alice == [
        (timedelta(0), "sms", "+15550100001"),
        (timedelta(0), "email", "alice@credlink.example"),
        (timedelta(minutes=1), "voice", "+15550100001"),
    ]


def test_shipped_matrix_with_ack_at_7_minutes() -> None:
    # Acked after the lead was paged: DevOps, CTO and emergency still follow, because those
    # steps hold while the service is still down (`unresolved`), acked or not; the repeats
    # of the emergency contact stop (the policy's repeat.condition is `unacknowledged`).
    assert first_pages(shipped_config(), ack_at=timedelta(minutes=7)) == MATRIX


def test_ack_within_the_response_time_spares_the_lead_and_cancels_the_call() -> None:
    scenario = run(shipped_config(), "critical", T0, ALL, ack_at=timedelta(seconds=30))
    kinds = [(e.offset, e.kind) for e in scenario.events if e.kind != "page"]
    assert (timedelta(seconds=30), "acknowledged") in kinds
    assert (timedelta(minutes=5), "step_skipped") in kinds
    assert not [e for e in scenario.pages() if e.recipient == "erin"]
    voice = next(e for e in scenario.events if e.recipient == "alice" and e.method == "voice")
    assert voice.status == "cancelled (acknowledged)"
    assert scenario.final_status == "acknowledged"
    assert [m for m, _, _ in first_pages(shipped_config(), ack_at=timedelta(seconds=30))] == [
        0,
        0,
        15,
        15,
        30,
        45,
    ]


def test_until_stops_the_clock() -> None:
    scenario = run(shipped_config(), "critical", T0, ALL, until=timedelta(minutes=20))
    assert max(e.offset for e in scenario.events) == timedelta(minutes=16)  # the voice call


def test_override_changes_who_is_paged_first() -> None:
    cover = Override("primary", "bob", T0 - timedelta(hours=1), T0 + timedelta(hours=1), 3)
    pages = first_pages(shipped_config(), overrides=[cover])
    assert pages[0] == (0, 0, "bob")


def test_gap_in_the_rotation_goes_straight_to_the_next_level() -> None:
    cfg = shipped_config()
    before_start = datetime(2026, 1, 1, 12, tzinfo=UTC)  # the rotation starts 2026-01-05
    scenario = run(cfg, "critical", before_start, ALL)
    notes = [(e.offset, e.kind) for e in scenario.events if e.kind == "nobody_to_page"]
    assert notes == []  # level 0 also posts to #incidents, so it is never empty
    warning = run(cfg, "warning", before_start, ALL, until=timedelta(minutes=40))
    nobody = [e for e in warning.events if e.kind == "nobody_to_page"]
    assert [(e.offset, e.level) for e in nobody] == [(timedelta(minutes=30), 1)]


def _compare_with_daemon(database_url: str, ack_minute: int | None) -> None:
    """Drive the real engine and sender minute by minute on a fixed clock and check that
    every outbox row (recipient, method, due time, fate) is what the simulation printed."""
    rig = Rig(database_url, methods=("sms", "voice", "email", "chat"))
    try:
        opened = rig.fire(am_alert()).opened
        assert len(opened) == 1
        minute = 0
        while minute <= 110:
            rig.step()
            if ack_minute is not None and minute == ack_minute:
                rig.act(opened, Ack(by="alice", via="cli"))
            rig.clock.advance(minutes=1)
            minute += 1
        rows = outbox_rows(rig.factory, opened[0])
    finally:
        rig.close()
    # Pages only (other features add level-less rows, e.g. incident posts); whether a row
    # was then delivered is the sender's business, whether it was cancelled is the ack's.
    daemon = sorted(
        (r.level, r.recipient, r.method, r.due_at, r.status if r.status == "cancelled" else "sent")
        for r in rows
        if r.level is not None
    )
    ack = None if ack_minute is None else timedelta(minutes=ack_minute)
    scenario = run(
        shipped_config(),
        "critical",
        T0,
        rig.daemon.sender.methods,
        ack_at=ack,
        until=timedelta(minutes=110),
    )
    simulated = sorted(
        (e.level, e.recipient, e.method, e.at, "sent" if e.status == "sent" else "cancelled")
        for e in scenario.events
        if e.kind == "page"
    )
    assert simulated == daemon
    assert len(daemon) > 10


def test_simulation_matches_the_daemon(database_url: str) -> None:
    _compare_with_daemon(database_url, None)


def test_simulation_with_ack_matches_the_daemon(sqlite_url: str) -> None:
    _compare_with_daemon(sqlite_url, 0)


def test_cli_simulate_json_and_table(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    factory_now = datetime.now(UTC)
    from escalator.store.db import session_factory

    with transaction(session_factory(engine)) as session:
        session.add(
            OverrideRow(
                rotation="primary",
                person="bob",
                start_at=T0 - timedelta(hours=2),
                end_at=T0 + timedelta(hours=2),
                created_by="test",
                created_at=factory_now,
            )
        )
    engine.dispose()
    runner = CliRunner()
    args = [
        "--config",
        str(SHIPPED_CONFIG),
        "--database-url",
        sqlite_url,
        "simulate",
        "--labels",
        "severity=critical,alertname=CredlinkServiceDown",
        "--start",
        T0.isoformat(),
        "--ack-at",
        "7m",
        "--all-channels",
    ]
    result = runner.invoke(main, [*args, "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["policy"] == "critical"
    assert [s["name"] for s in data["scenarios"]] == ["no acknowledgement", "acknowledged at +7m"]
    first = data["scenarios"][0]["events"][0]
    assert (first["offset"], first["recipient"], first["method"]) == ("+0m", "bob", "sms")
    acked = data["scenarios"][1]
    assert acked["final_status"] == "acknowledged"
    assert any(e["kind"] == "acknowledged" and e["offset"] == "+7m" for e in acked["events"])
    table = runner.invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "== no acknowledgement ==" in table.stdout
    assert "== acknowledged at +7m ==" in table.stdout
    lines = table.stdout.splitlines()
    assert any("+15m" in line and "dave" in line and "role devops" in line for line in lines)
    assert any("+5m" in line and "erin" in line for line in lines)
    unrouted = runner.invoke(main, [*args[:4], "simulate", "--labels", "nope", "--start", "now"])
    assert unrouted.exit_code != 0
    assert "name=value" in unrouted.output


def test_outbox_rows_are_untouched_by_simulation(sqlite_url: str) -> None:
    """A dry run writes nothing: not even to a database it could reach."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(SHIPPED_CONFIG),
            "--database-url",
            sqlite_url,
            "simulate",
            "--labels",
            "severity=critical",
            "--start",
            T0.isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    from escalator.store.db import session_factory

    with transaction(session_factory(engine)) as session:
        assert session.query(OutboxRow).count() == 0
    engine.dispose()
