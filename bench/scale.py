"""Engine at scale: escalation lag and tick cost with 1k, 10k and 100k open alerts,
and the daemon's resident memory with them.

Each size gets a fresh database holding N open alerts whose next step is far away (they
only make the table big), plus a few hundred probe alerts whose next step falls due at
spread moments during a short window. The daemon (a real process) steps the probes:
  lag      = the probe's level-1 page `sent_at` minus the moment it fell due (p50, p99);
  tick     = mean wall time of one engine tick over the window, from the daemon's own
             `escalator_engine_tick_seconds` histogram on /metrics;
  RSS      = VmRSS of the daemon at the end of the window.
Flat tick cost from 1k to 100k means the due query uses its index and nothing scans.

Run: python bench/scale.py [--quick] [--backend sqlite|postgresql] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BACKENDS,
    database,
    machine,
    median,
    percentile,
    rss_mb,
    scratch,
    serve_escalator,
    write_config,
)

from escalator.config import load_config
from escalator.escalation.policies import policy_id
from escalator.store.db import make_engine, upgrade
from escalator.store.tables import AlertRow, OutboxRow, PolicyRow

LEVELS = (0, 30, 3600)  # level 1 at 30 s after clock_base; level 2 far away


def _seed(url: str, config_path: Path, open_alerts: int, probes: int, window: float) -> datetime:
    """Insert the big idle population and the probes; returns when the window starts."""
    config = load_config(config_path)
    policy = config.policies["bench"]
    pid = policy_id(policy)
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    start = now + timedelta(seconds=8)  # time for the daemon to start before the first probe

    def row(i: int, base: datetime) -> dict[str, object]:
        return {
            "fingerprint": f"{i:016x}", "starts_at": now, "ends_at": None,
            "alertname": "ScaleAlert", "identity": f"{i:040x}", "severity": "warning",
            "labels": {"alertname": "ScaleAlert", "i": str(i)}, "annotations": {},
            "generator_url": None, "policy_name": "bench", "policy_id": pid,
            "status": "triggered", "level": 0, "next_step": 1, "repeats_done": 0,
            "opened_at": base, "clock_base": base,
            "next_action_at": base + timedelta(seconds=LEVELS[1]), "updated_at": now,
        }  # fmt: skip

    with engine.begin() as conn:
        conn.execute(
            insert(PolicyRow.__table__),
            [{"id": pid, "name": "bench", "body": policy.model_dump(mode="json"),
              "created_at": now}],
        )  # fmt: skip
        chunk = 5000
        for first in range(0, open_alerts, chunk):
            conn.execute(
                insert(AlertRow.__table__),
                [row(i, now + timedelta(hours=1)) for i in range(first, min(first + chunk,
                                                                            open_alerts))],
            )  # fmt: skip
        step = window / probes
        conn.execute(
            insert(AlertRow.__table__),
            [
                row(open_alerts + j, start + timedelta(seconds=j * step - LEVELS[1]))
                for j in range(probes)
            ],
        )
    engine.dispose()
    return start


def _tick_metrics(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = float(re.search(r"^escalator_engine_tick_seconds_sum (\S+)$", text, re.M)[1])
    count = float(re.search(r"^escalator_engine_tick_seconds_count (\S+)$", text, re.M)[1])
    return total, count


def measure(backend: str, size: int, probes: int, window: float) -> dict[str, float]:
    folder = scratch()
    config = write_config(folder / "escalator.yaml", LEVELS, tick="1s")
    with database(backend) as url:
        start = _seed(url, config, size, probes, window)
        served = serve_escalator(config, url)
        try:
            while datetime.now(UTC) < start:
                time.sleep(0.1)
            before = _tick_metrics(served.url)
            time.sleep(window + 3)
            after = _tick_metrics(served.url)
            rss = rss_mb(served.proc.pid)
        finally:
            served.stop()
        engine = make_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(
                select(OutboxRow.sent_at, AlertRow.next_action_at, AlertRow.clock_base)
                .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
                .where(OutboxRow.level == 1, OutboxRow.status == "sent")
            ).all()
        engine.dispose()
    lags = [(sent - (base + timedelta(seconds=LEVELS[1]))).total_seconds()
            for sent, _, base in rows]  # fmt: skip
    ticks = after[1] - before[1]
    return {
        "paged": len(lags),
        "lag50": percentile(lags, 50),
        "lag99": percentile(lags, 99),
        "tick_ms": (after[0] - before[0]) / ticks * 1000 if ticks else float("nan"),
        "rss": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--sizes", help="comma-separated open-alert counts")
    args = parser.parse_args()
    runs, probes, window = (1, 100, 5.0) if args.quick else (3, 300, 15.0)
    sizes = [int(s) for s in (args.sizes or "1000,10000,100000").split(",")]
    print(machine())
    print(f"engine at scale: {probes} probes falling due over {window:g}s, median of {runs} runs")
    for backend in args.backend or BACKENDS:
        for size in sizes:
            results = [measure(backend, size, probes, window) for _ in range(runs)]
            m = {k: median([r[k] for r in results]) for k in results[0]}
            print(
                f"  {backend:<10} {size:>7} open: lag p50 {m['lag50'] * 1000:7.0f} ms"
                f"  p99 {m['lag99'] * 1000:7.0f} ms  ({m['paged']:.0f}/{probes} paged)"
                f"  tick {m['tick_ms']:7.1f} ms  RSS {m['rss']:6.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
