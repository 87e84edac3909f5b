"""First-page latency: from the webhook post to the page at the channel, p50 and p99.

The daemon runs as a real process; its console channel writes one line per page to a
pipe that this script reads, stamping each line as it arrives. One alert per post, one at
a time, so each figure is the latency of an idle-ish daemon, not of a queue:
  post -> page:   from just before the POST to the page line;
  commit -> page: from the 2xx (the webhook answers after its commit) to the page line.
The console is the channel because it has no network hop of its own; a Twilio page adds
the provider's round trip.

Run: python bench/latency.py [--quick] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

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

_PAGE = re.compile(r"level 0: \[[A-Z]+\] #(\d+) ")


def measure(backend: str, alerts: int) -> tuple[list[float], list[float]]:
    folder = scratch()
    config = write_config(folder / "escalator.yaml")
    seen: dict[int, float] = {}
    with database(backend) as url:
        served = serve_escalator(config, url, stdout=subprocess.PIPE)

        def read() -> None:
            assert served.proc.stdout is not None
            for line in iter(served.proc.stdout.readline, b""):
                stamp = time.perf_counter()
                match = _PAGE.search(line.decode(errors="replace"))
                if match:
                    seen[int(match[1])] = stamp

        threading.Thread(target=read, daemon=True).start()
        post_to_page, commit_to_page = [], []
        tag = uuid.uuid4().hex[:8]
        try:
            with httpx.Client(timeout=30) as client:
                for i in range(alerts):
                    started = time.perf_counter()
                    response = client.post(
                        f"{served.url}/webhooks/alertmanager", json=storm_body(tag, [i])
                    )
                    committed = time.perf_counter()
                    response.raise_for_status()
                    alert_id = response.json()["opened"][0]
                    deadline = time.monotonic() + 30
                    while alert_id not in seen and time.monotonic() < deadline:
                        time.sleep(0.0005)
                    if alert_id in seen:
                        post_to_page.append(seen[alert_id] - started)
                        commit_to_page.append(seen[alert_id] - committed)
        finally:
            served.stop()
    return post_to_page, commit_to_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    args = parser.parse_args()
    alerts, runs = (40, 3) if args.quick else (300, 5)
    print(machine())
    print(f"first-page latency: {alerts} single-alert posts, median of {runs} runs' p50/p99")
    for backend in args.backend or BACKENDS:
        figures: dict[str, list[float]] = {"p50": [], "p99": [], "c50": [], "c99": []}
        for _ in range(runs):
            post, commit = measure(backend, alerts)
            figures["p50"].append(percentile(post, 50))
            figures["p99"].append(percentile(post, 99))
            figures["c50"].append(percentile(commit, 50))
            figures["c99"].append(percentile(commit, 99))
        ms = {k: median(v) * 1000 for k, v in figures.items()}
        print(
            f"  {backend:<10} post->page p50 {ms['p50']:6.1f} ms  p99 {ms['p99']:6.1f} ms"
            f"   |   commit->page p50 {ms['c50']:6.1f} ms  p99 {ms['c99']:6.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
