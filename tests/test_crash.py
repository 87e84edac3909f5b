"""SIGKILL the daemon again and again during an alert storm with escalations.

Crash safety is a property of where the truth lives: the alert, its state and its pages
commit together, and the sender marks a page sent only after the provider took it. So a
daemon killed at any moment and restarted on the same database must lose no alert that
was answered 2xx, lose no page, and repeat at most the one page per kill that was in
flight between the provider call and its commit. Runs on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import httpx

from escalator.engine.runner import wait_until
from tests.support.payloads import fingerprint, storm_body, storm_config
from tests.support.ports import free_port
from tests.support.processes import (
    EscalatorProcess,
    page_counts,
    post_until_accepted,
)
from tests.support.store import read_record

ALERTS = 600
GROUP = 20
LEVELS = (0, 2, 4)
KILLS = 5


def test_sigkill_during_storm_loses_nothing(database_url: str, tmp_path: Path) -> None:
    config = storm_config(tmp_path / "escalator.yaml", LEVELS, send_lease="3s")
    daemon = EscalatorProcess(
        tmp_path, config, database_url, free_port(), name="daemon", log_level="warning"
    )
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    accepted: list[int] = []  # group indices answered 2xx
    storm_error: list[BaseException] = []

    def storm() -> None:
        # Alertmanager's behaviour: retry every group until it is answered 2xx.
        try:
            with httpx.Client(timeout=10) as client:
                for index, start in enumerate(range(0, ALERTS, GROUP)):
                    body = storm_body(tag, range(start, min(start + GROUP, ALERTS)))
                    post_until_accepted(client, [daemon.url], body, timeout=180)
                    accepted.append(index)
                    time.sleep(0.3)  # spread the storm over the kills
        except BaseException as exc:  # surfaced by the main thread
            storm_error.append(exc)

    try:
        daemon.start()
        daemon.wait_ready()
        poster = threading.Thread(target=storm, daemon=True)
        poster.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.5))
            daemon.kill9()
            daemon.start()  # same database, same port
            daemon.wait_ready()
        poster.join(timeout=240)
        assert not poster.is_alive(), "the storm never got all its groups accepted"
        assert not storm_error, storm_error

        last = len(LEVELS) - 1

        def settled() -> bool:
            record = read_record(database_url, last)
            return (
                record.finished == ALERTS
                and record.outbox_status.get("pending", 0) == 0
                and record.outbox_status.get("sending", 0) == 0
            )

        assert wait_until(settled, timeout=120, poll=0.5), (
            f"seed {seed}: {read_record(database_url, last)}\n{daemon.stderr()}"
        )
        record = read_record(database_url, last)

        # No alert lost: every alert of every group answered 2xx is stored, once.
        assert len(accepted) == ALERTS // GROUP
        assert set(record.alerts) == {fingerprint(tag, i) for i in range(ALERTS)}
        assert all(n == 1 for n in record.alerts.values())

        # Every step happened exactly once (the engine's step commits atomically) ...
        ids = {a for a, _ in record.paged}
        expected = {(a, lvl) for a in ids for lvl in range(len(LEVELS))}
        assert len(ids) == ALERTS
        assert set(record.paged) == expected and max(record.paged.values()) == 1
        assert set(record.outbox) == expected and max(record.outbox.values()) == 1
        assert record.outbox_status == {"sent": ALERTS * len(LEVELS)}

        # ... no page lost, and at most one repeated page per kill (the one in flight).
        printed = page_counts([daemon])
        assert set(printed) == expected, f"seed {seed}: pages never sent"
        duplicates = sum(printed.values()) - len(printed)
        assert duplicates <= KILLS, f"seed {seed}: {duplicates} duplicate pages for {KILLS} kills"
        assert daemon.starts == KILLS + 1
    finally:
        daemon.stop()
