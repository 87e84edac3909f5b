"""Ingest throughput: Alertmanager bodies of 100 alerts posted over loopback, alerts/s.

new:     every body opens 100 alerts (alert, timeline, first page in the outbox);
         beside it, the bare limit: the same parse plus a SQLAlchemy Core bulk insert.
repeats: the same bodies posted again, nothing new (Alertmanager's group_interval resend);
         beside it, the parse-only limit.
The ratio to the limit is the figure: it says how much of the cost is escalator's own.

Run: python bench/ingest.py [--quick] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BACKENDS,
    Served,
    database,
    free_port,
    machine,
    median,
    scratch,
    serve_escalator,
    storm_body,
    write_config,
)

BATCH = 100
CLIENTS = 4  # concurrent posters, like several Alertmanager groups flushing at once


def _post_all(url: str, bodies: list[dict[str, object]]) -> float:
    """Post every body (CLIENTS at a time); returns alerts per second."""

    def post(chunk: list[dict[str, object]]) -> None:
        with httpx.Client(timeout=120) as client:
            for body in chunk:
                # Like Alertmanager: a 5xx is retried, and the retry counts in the time.
                while (response := client.post(url, json=body)).status_code >= 500:
                    time.sleep(0.05)
                response.raise_for_status()

    chunks = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(post, chunks))
    return len(bodies) * BATCH / (time.perf_counter() - start)


def _bodies(count: int) -> list[dict[str, object]]:
    tag = uuid.uuid4().hex[:8]
    return [storm_body(tag, range(i * BATCH, (i + 1) * BATCH)) for i in range(count)]


def measure(backend: str, posts: int, runs: int) -> dict[str, float]:
    results: dict[str, list[float]] = {"new": [], "bare": [], "repeat": [], "parse": []}
    folder = scratch()
    config = write_config(folder / "escalator.yaml")
    for _ in range(runs):
        with database(backend) as url:
            served = serve_escalator(config, url)
            try:
                bodies = _bodies(posts)
                results["new"].append(_post_all(f"{served.url}/webhooks/alertmanager", bodies))
                results["repeat"].append(
                    _post_all(f"{served.url}/webhooks/alertmanager", bodies)
                )
            finally:
                served.stop()
        with database(backend) as url:
            port = free_port()
            bare = Served([sys.executable, str(Path(__file__).parent / "bare_app.py"), url,
                           str(port)], port)  # fmt: skip
            try:
                bare.wait()
                bodies = _bodies(posts)
                results["bare"].append(_post_all(f"{bare.url}/insert", bodies))
                results["parse"].append(_post_all(f"{bare.url}/parse", bodies))
            finally:
                bare.stop()
    return {k: median(v) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few posts, 3 runs")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    args = parser.parse_args()
    posts, runs = (8, 3) if args.quick else (100, 5)
    print(machine())
    print(f"ingest: {posts} posts x {BATCH} alerts, {CLIENTS} clients, median of {runs} runs")
    for backend in args.backend or BACKENDS:
        r = measure(backend, posts, runs)
        print(
            f"  {backend:<10} new {r['new']:>8.0f} alerts/s  limit {r['bare']:>8.0f}"
            f"  ratio {r['new'] / r['bare']:.2f}   |   repeats {r['repeat']:>8.0f} alerts/s"
            f"  limit {r['parse']:>8.0f}  ratio {r['repeat'] / r['parse']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
