"""Three real `escalator serve` replicas on one PostgreSQL database.

The claim under test: with several replicas, every escalation step of every alert happens
once and every page is sent once. The replicas start at the same moment on an empty
database, so their migrations race (the advisory lock must serialise them); then 1,000
alerts arrive spread over the three webhooks, each group also posted to a second replica
the way a clustered Alertmanager's peers both deliver it. Steps are counted in the store
(timeline `paged` rows and outbox rows per alert and level) and pages at the sending side:
the console channel prints one line per page, and the three processes' outputs are added.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from escalator.engine.runner import wait_until
from escalator.store.db import current_revision, head_revision, make_engine
from tests.support.payloads import fingerprint, storm_body, storm_config
from tests.support.pg import fresh_database
from tests.support.ports import free_port
from tests.support.processes import (
    EscalatorProcess,
    page_counts,
    post_until_accepted,
)
from tests.support.store import read_record

ALERTS = 1000
GROUP = 20  # alerts per webhook body, as one Alertmanager group
LEVELS = (0, 2, 4)  # seconds: the policy's three levels, compressed


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A database with no schema at all, so the replicas' start-up migrations race."""
    with fresh_database(prefix="escalator_replicas") as url:
        yield url


def test_three_replicas_step_and_page_each_alert_level_once(empty_pg: str, tmp_path: Path) -> None:
    config = storm_config(tmp_path / "escalator.yaml", LEVELS, send_lease="30s")
    replicas = [
        EscalatorProcess(
            tmp_path, config, empty_pg, free_port(), name=f"replica{i}", log_level="warning"
        )
        for i in range(3)
    ]
    try:
        for replica in replicas:  # no waiting in between: all three migrate at once
            replica.start()
        for replica in replicas:
            replica.wait_ready(timeout=90)

        engine = make_engine(empty_pg)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()

        tag = uuid.uuid4().hex[:8]
        urls = [r.url for r in replicas]
        groups = [list(range(i, min(i + GROUP, ALERTS))) for i in range(0, ALERTS, GROUP)]

        def deliver(job: tuple[int, int]) -> None:
            index, peer = job
            with httpx.Client(timeout=30) as client:
                body = storm_body(tag, groups[index])
                post_until_accepted(client, [urls[(index + peer) % 3]], body)

        # Like two clustered Alertmanager peers: every group goes to two replicas, and the
        # two posts run in parallel threads, so they race on the same rows.
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(deliver, [(i, peer) for i in range(len(groups)) for peer in (0, 1)]))

        last = len(LEVELS) - 1

        def all_done() -> bool:
            record = read_record(empty_pg, last)
            return (
                record.finished == ALERTS
                and record.outbox_status.get("pending", 0) == 0
                and record.outbox_status.get("sending", 0) == 0
                and sum(page_counts(replicas).values()) >= ALERTS * len(LEVELS)
            )

        assert wait_until(all_done, timeout=150, poll=1.0), _diagnose(replicas, empty_pg, last)

        record = read_record(empty_pg, last)
        wanted = {fingerprint(tag, i) for i in range(ALERTS)}
        assert set(record.alerts) == wanted
        assert all(n == 1 for n in record.alerts.values()), "an HA duplicate opened a 2nd alert"
        ids = {a for a, _ in record.paged}
        assert len(ids) == ALERTS
        expected = {(a, lvl) for a in ids for lvl in range(len(LEVELS))}

        # Every step happened once: one 'paged' note and one outbox row per alert and level.
        assert set(record.paged) == expected
        assert max(record.paged.values()) == 1
        assert set(record.outbox) == expected
        assert max(record.outbox.values()) == 1
        assert record.outbox_status == {"sent": ALERTS * len(LEVELS)}

        # Every page was sent once, counted where it left: the three processes' outputs.
        printed = page_counts(replicas)
        assert set(printed) == expected
        duplicates = {key: n for key, n in printed.items() if n != 1}
        assert not duplicates, f"pages sent more than once: {list(duplicates.items())[:10]}"
        # Shown with -s: how the replicas split the work (not asserted: it is up to the race).
        print({r.name: len(r.pages()) for r in replicas})
        for replica in replicas:
            assert replica.alive(), f"{replica.name} died:\n{replica.stderr()}"
    finally:
        for replica in replicas:
            replica.stop()


def _diagnose(replicas: list[EscalatorProcess], url: str, last: int) -> str:
    record = read_record(url, last)
    lines = [
        f"alerts={len(record.alerts)} finished={record.finished}",
        f"outbox={dict(record.outbox_status)}",
        f"printed={sum(page_counts(replicas).values())}",
    ]
    lines += [f"--- {r.name} stderr:\n{r.stderr()}" for r in replicas]
    return "\n".join(lines)
