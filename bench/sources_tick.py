"""What heartbeats and maintenance windows add to every engine tick.

Each tick first releases alerts whose maintenance window ended and checks heartbeats for
silence (escalator.engine `_sources`, inside the first batch's transaction: one indexed
query each). This prints the wall time of a whole idle tick with and without heartbeats
and a weekly window configured, on an otherwise idle store: the price every tick pays.

    python bench/sources_tick.py [--quick] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import time

import yaml
from common import BACKENDS, database, machine, median, percentile, scratch

from escalator.config import load_config
from escalator.daemon import build_daemon
from escalator.notify.channels.console import ConsoleChannel
from escalator.store.clock import SystemClock


def config_path(with_sources: bool) -> str:
    data: dict[str, object] = {
        "people": [{"id": "p0"}],
        "policies": {"bench": {"steps": [{"targets": [{"person": "p0"}]}]}},
        "default_policy": "bench",
    }
    if with_sources:
        data["heartbeats"] = [
            {"name": f"hb{i}", "interval": "1h", "alertmanager": {"match": {"alertname": f"W{i}"}}}
            for i in range(5)
        ]
        data["maintenance"] = [
            {"name": "weekly", "match": {"service": "db"}, "from": "02:00", "duration": "2h"}
        ]
    path = scratch() / "escalator.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def measure(backend: str, with_sources: bool, runs: int) -> list[float]:
    config = load_config(config_path(with_sources))
    with database(backend) as url:
        daemon = build_daemon(
            config, url, clock=SystemClock(), channels={"console": ConsoleChannel()}
        )
        try:
            tick = []
            for _ in range(runs):
                begin = time.perf_counter()
                daemon.engine.tick()
                tick.append(time.perf_counter() - begin)
            return tick
        finally:
            daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=BACKENDS)
    args = parser.parse_args()
    runs = 50 if args.quick else 300
    print(machine())
    print(f"{runs} idle ticks each; milliseconds, p50 / p99")
    for backend in [args.backend] if args.backend else BACKENDS:
        for with_sources in (False, True):
            tick = measure(backend, with_sources, runs)
            label = "5 heartbeats + 1 weekly window" if with_sources else "none configured"
            print(
                f"{backend:<10} {label:<31} idle tick "
                f"{median(tick) * 1000:6.2f} / {percentile(tick, 99) * 1000:6.2f}"
            )


if __name__ == "__main__":
    main()
