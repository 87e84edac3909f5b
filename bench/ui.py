"""Server time to render each web console page with 10,000 open alerts (target: 150 ms).

    python bench/ui.py [--quick] [--backend sqlite|postgresql] [--alerts 10000]

Seeds the store directly (Core bulk inserts, as bench/scale.py does): N open alerts of
three severities with labels, annotations and timeline rows, one incident with updates,
a month of resolved history for the report, and overrides; then renders every page
through the real app (create_app over build_daemon, engine not started) in process, so
the figure is the server's work (routing, store queries, Jinja) without a network. It
prints the median and the slowest wall-clock time of the runs for each page, and the
median CPU time this process spent on one (server and in-process client; on a shared,
busy machine the wall clock mostly measures waiting for a CPU, the CPU time does not;
PostgreSQL's own CPU is not in it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from common import BACKENDS, database, machine, scratch
from fastapi.testclient import TestClient
from sqlalchemy import insert

from escalator.config import load_config
from escalator.daemon import build_daemon
from escalator.escalation.policies import policy_id
from escalator.store.db import make_engine, upgrade
from escalator.store.tables import (
    AlertRow,
    IncidentRow,
    IncidentUpdateRow,
    OverrideRow,
    PolicyRow,
    TimelineRow,
)
from escalator.web.app import create_app
from tests.support.console import webhook_body, write_config

PAGES = (
    ("alerts, page 1", "/ui/"),
    ("alerts, page 100", "/ui/?page=100"),
    ("alerts, severity filter", "/ui/?severity=critical"),
    ("alerts, label filter", "/ui/?label=service%3Dapi"),
    ("alerts, live fragment", "/ui/fragment/alerts"),
    ("alert page", "/ui/alerts/{alert}"),
    ("on call", "/ui/oncall"),
    ("incidents", "/ui/incidents"),
    ("report (30 days)", "/ui/report"),
)
SEVERITIES = ("critical", "warning", "info")


def seed(url: str, config_path: object, open_alerts: int, history: int) -> int:
    """Insert the population; returns the id of an alert with a long timeline."""
    config = load_config(config_path)  # type: ignore[arg-type]
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    pids = {}
    with engine.begin() as conn:
        for name, policy in config.policies.items():
            pid = policy_id(policy)
            pids[name] = pid
            conn.execute(
                insert(PolicyRow.__table__),
                [{"id": pid, "name": name, "body": policy.model_dump(mode="json"),
                  "created_at": now}],
            )  # fmt: skip

        def row(i: int, status: str, opened: datetime) -> dict[str, object]:
            severity = SEVERITIES[i % 3]
            policy = "critical" if severity == "critical" else "warning"
            acked = status != "triggered"
            return {
                "fingerprint": f"{i:016x}", "starts_at": opened, "ends_at": None,
                "alertname": f"BenchAlert{i % 40}", "identity": f"{i:040x}",
                "severity": severity,
                "labels": {"alertname": f"BenchAlert{i % 40}", "severity": severity,
                           "service": ("api", "db", "queue", "web")[i % 4],
                           "instance": f"host-{i}:9100"},
                "annotations": {"summary": f"Bench alert {i} <b>is</b> firing",
                                "description": "x" * 200},
                "generator_url": "http://prometheus.bench/graph", "policy_name": policy,
                "policy_id": pids[policy], "status": status, "level": 1 if acked else 0,
                "next_step": 2 if acked else 1, "repeats_done": 0,
                "opened_at": opened, "clock_base": opened,
                "acked_at": opened + timedelta(minutes=4) if acked else None,
                "acked_by": "alice" if acked else None, "ack_via": "web" if acked else None,
                "ack_expires_at": None,
                "resolved_at": opened + timedelta(minutes=30) if status == "resolved" else None,
                "resolved_by": "alice" if status == "resolved" else None,
                "resolved_via": "web" if status == "resolved" else None,
                "next_action_at": None if status == "resolved" else opened + timedelta(hours=1),
                "updated_at": now,
            }  # fmt: skip

        chunk = 5000
        for first in range(0, open_alerts, chunk):
            conn.execute(
                insert(AlertRow.__table__),
                [
                    row(i, "triggered" if i % 5 else "acknowledged",
                        now - timedelta(seconds=i * 3))
                    for i in range(first, min(first + chunk, open_alerts))
                ],
            )  # fmt: skip
        for first in range(0, history, chunk):
            conn.execute(
                insert(AlertRow.__table__),
                [
                    row(open_alerts + i, "resolved",
                        now - timedelta(days=1 + 29 * i / max(history, 1)))
                    for i in range(first, min(first + chunk, history))
                ],
            )  # fmt: skip
        target = 1
        conn.execute(
            insert(TimelineRow.__table__),
            [
                {"alert_id": target, "at": now - timedelta(minutes=60 - n), "kind": "paged",
                 "actor": None, "channel": None, "level": n % 3,
                 "detail": f"level {n % 3} (escalation): alice (person)"}
                for n in range(60)
            ],
        )  # fmt: skip
        conn.execute(
            insert(IncidentRow.__table__),
            [{"alert_id": target, "channel": "incident-bench", "status": "open",
              "opened_at": now - timedelta(hours=1), "commander": "alice",
              "next_reminder_at": now + timedelta(minutes=10), "updated_at": now}],
        )  # fmt: skip
        conn.execute(
            insert(IncidentUpdateRow.__table__),
            [{"alert_id": target, "at": now - timedelta(minutes=m), "author": "alice",
              "message": f"update {m}", "status": "IN PROGRESS", "eta": None,
              "posted_at": now}
             for m in range(0, 60, 15)],
        )  # fmt: skip
        conn.execute(
            insert(OverrideRow.__table__),
            [{"rotation": "primary", "person": "carol", "start_at": now + timedelta(days=d),
              "end_at": now + timedelta(days=d, hours=8), "created_by": "alice",
              "created_at": now}
             for d in range(1, 6)],
        )  # fmt: skip
    engine.dispose()
    return target


def measure(backend: str, open_alerts: int, history: int, runs: int) -> None:
    folder = scratch()
    config_path = write_config(folder / "escalator.yaml")
    with database(backend) as url:
        target = seed(url, config_path, open_alerts, history)
        daemon = build_daemon(load_config(config_path), url, channels={})
        try:
            client = TestClient(create_app(daemon, run_engine=False), client=("127.0.0.1", 1))
            login = client.get("/ui/login").text
            csrf = login.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            client.post("/ui/login", data={"csrf": csrf, "person": "alice"})
            assert client.post("/webhooks/alertmanager", json=webhook_body("Warm")).is_success
            print(f"\n{backend}: {open_alerts} open alerts, {history} resolved in 30 days")
            print(f"  {'page':<26} {'median ms':>10} {'max ms':>8} {'cpu ms':>8}")
            for label, path in PAGES:
                url_path = path.format(alert=target)
                client.get(url_path)  # warm: policy cache, templates, signing key
                times, cpu = [], []
                for _ in range(runs):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    response = client.get(url_path)
                    times.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
                    assert response.status_code == 200, (url_path, response.text[:500])
                print(
                    f"  {label:<26} {statistics.median(times):>10.1f} {max(times):>8.1f}"
                    f" {statistics.median(cpu):>8.1f}"
                )
        finally:
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--alerts", type=int, default=10_000)
    args = parser.parse_args()
    print(machine())
    runs = 5 if args.quick else 15
    history = 500 if args.quick else 2000
    for backend in [args.backend] if args.backend else BACKENDS:
        measure(backend, args.alerts, history, runs)


if __name__ == "__main__":
    main()
