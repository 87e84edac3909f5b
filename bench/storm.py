"""Storm: 10,000 alerts in 10 seconds, all for one on-call engineer.

A hundred Alertmanager bodies of 100 alerts each, posted ten per second by four clients
(late posts go as soon as they can). Figures: how long until every alert was answered
2xx, until every first page was sent, and the first page's delay after its alert opened
(p50, p99): whether a storm queues the engineer's pages behind each other, and how far.

Run: python bench/storm.py [--quick] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BACKENDS,
    database,
    machine,
    median,
    percentile,
    scratch,
    serve_escalator,
    storm_body,
    write_config,
)

from escalator.store.db import make_engine
from escalator.store.tables import AlertRow, OutboxRow

BATCH = 100


def measure(backend: str, alerts: int, seconds: float) -> dict[str, float]:
    folder = scratch()
    config = write_config(folder / "escalator.yaml", (0, 3600, 7200))
    posts = alerts // BATCH
    tag = uuid.uuid4().hex[:8]
    with database(backend) as url:
        served = serve_escalator(config, url)
        engine = make_engine(url)
        try:
            start = time.perf_counter()

            def post(i: int) -> None:
                time.sleep(max(0.0, start + i * seconds / posts - time.perf_counter()))
                with httpx.Client(timeout=120) as client:
                    body = storm_body(tag, range(i * BATCH, (i + 1) * BATCH))
                    while client.post(f"{served.url}/webhooks/alertmanager",
                                      json=body).status_code >= 300:  # fmt: skip
                        time.sleep(0.05)

            with ThreadPoolExecutor(4) as pool:
                list(pool.map(post, range(posts)))
            accepted = time.perf_counter() - start

            def unsent() -> int:
                with engine.connect() as conn:
                    return int(
                        conn.scalar(
                            select(func.count()).where(
                                OutboxRow.level == 0, OutboxRow.status != "sent"
                            )
                        )
                        or 0
                    )

            deadline = time.monotonic() + 600
            while unsent() and time.monotonic() < deadline:
                time.sleep(0.2)
            paged = time.perf_counter() - start
            with engine.connect() as conn:
                delays = [
                    (sent - opened).total_seconds()
                    for sent, opened in conn.execute(
                        select(OutboxRow.sent_at, AlertRow.opened_at)
                        .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
                        .where(OutboxRow.level == 0, OutboxRow.status == "sent")
                    )
                ]
        finally:
            engine.dispose()
            served.stop()
    return {
        "accepted": accepted,
        "paged": paged,
        "sent": len(delays),
        "d50": percentile(delays, 50),
        "d99": percentile(delays, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 alerts in 2 s, one run")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    args = parser.parse_args()
    alerts, seconds, runs = (2000, 2.0, 1) if args.quick else (10000, 10.0, 3)
    print(machine())
    print(f"storm: {alerts} alerts in {seconds:g}s for one engineer, median of {runs} runs")
    for backend in args.backend or BACKENDS:
        results = [measure(backend, alerts, seconds) for _ in range(runs)]
        m = {k: median([r[k] for r in results]) for k in results[0]}
        print(
            f"  {backend:<10} all 2xx after {m['accepted']:6.1f} s, all first pages sent after"
            f" {m['paged']:6.1f} s ({m['sent']:.0f}); open->page p50 {m['d50']:6.2f} s"
            f"  p99 {m['d99']:6.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
