"""Ingest throughput, sustained, driven by wrk: escalator beside bare endpoints.

Every figure is wrk (`/usr/bin/wrk`, 2 threads, 4 connections: four Alertmanager groups
flushing at once) posting Alertmanager bodies of 100 `CredlinkServiceDown` alerts (the
seed's alert, bench/ingest.lua builds them) for a sustained period (20 s; `--quick` 5 s)
to a server process over loopback:

  parse    bare endpoint: pydantic parse of the body only (bench/bare_app.py /parse)
  insert   bare endpoint: parse + SQLAlchemy Core insert of the alert, timeline and outbox
           rows (bench/bare_app.py /insert; SQLite WAL with synchronous=FULL, as escalator)
  repeats  escalator, the same bodies again (Alertmanager's group_interval resend)
  new      escalator, every body 100 alerts never seen (fresh fingerprints per request),
           on the shipped config: `critical` (critical route: pages, incidents, SLAs) and
           `warning` (the warning route)

Printed per backend: alerts/s, the server's CPU seconds per 1,000 alerts (utime + stime
of the server process from /proc/<pid>/stat; the database server's own CPU is not in
it), and the ratios: repeats / parse and new / insert. Every non-2xx is counted and shown.

`--only storm`: 20,000 new critical alerts posted as Alertmanager does (groups of 100, four
posts at a time, as fast as answered): every answer's status and time (the slowest must
stay under 10 s) and the daemon's peak resident memory (VmHWM), at the last answer and
once the engine has declared the incidents and sent the pages (idle again).

The client shares the machine's cores with the server (wrk is light, C and LuaJIT): the
ratios are measured in the same run, one server at a time, and are the figures to quote.

Run: python bench/ingest.py [--quick] [--backend sqlite|postgresql] [--only ingest|storm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BACKENDS,
    ROOT,
    Served,
    database,
    free_port,
    machine,
    percentile,
    scratch,
    serve_escalator,
)

HERE = Path(__file__).resolve().parent
BATCH = 100
CONNECTIONS = 4
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SHIPPED = ROOT / "config" / "escalator.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def settle(pid: int, quiet: float = 0.05, limit: float = 60, window: float = 2.5) -> None:
    """Wait until the server is idle (under `quiet` of a core over `window` seconds, longer
    than an engine tick): the engine's work left by priming (incident notices, pages) is
    not the repeat path's."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < quiet * window:
            return


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# Bodies as bench/ingest.lua builds them (for the repeat file and the storm) --------------


def alert(tag: str, thread: int, i: int, severity: str) -> dict[str, object]:
    instance = f"api-{tag}-{thread}-{i}.credlink.internal:8080"
    return {
        "status": "firing",
        "labels": {
            "alertname": "CredlinkServiceDown",
            "instance": instance,
            "job": "credlink-api",
            "service": "credlink-api",
            "severity": severity,
        },
        "annotations": {
            "summary": f"CredLink API is down on {instance}",
            "description": f"{instance} has not answered a scrape for over a minute.",
            "impact": "CredLink API is completely unavailable; all user requests are failing",
            "runbook_url": "https://runbooks.credlink.example/production#service-down",
        },
        "startsAt": "2026-03-02T18:59:47.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.credlink.internal:9090/graph?g0.expr=up",
        "fingerprint": f"{tag}{thread:04x}{i:010x}",
    }


def body(tag: str, thread: int, first: int, severity: str) -> dict[str, object]:
    return {
        "receiver": "escalator",
        "status": "firing",
        "alerts": [alert(tag, thread, i, severity) for i in range(first, first + BATCH)],
        "groupLabels": {"alertname": "CredlinkServiceDown"},
        "commonLabels": {"alertname": "CredlinkServiceDown", "severity": severity},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.credlink.internal:9093",
        "version": "4",
        "groupKey": '{}:{alertname="CredlinkServiceDown"}',
        "truncatedAlerts": 0,
    }


# wrk -------------------------------------------------------------------------------------


def run_wrk(url: str, seconds: float, args: list[str], pid: int) -> dict[str, float]:
    """wrk against `url` for `seconds`; alerts/s and the server's CPU s per 1,000 alerts."""
    before = cpu_seconds(pid)
    out = subprocess.run(
        [WRK, "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:g}s", "--timeout", "30s",
         "-s", str(HERE / "ingest.lua"), url, "--", *args],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = cpu_seconds(pid) - before
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    requests, non2xx, socket_errors, duration_us = (int(x) for x in line.split()[1:])
    alerts = (requests - non2xx) * BATCH
    return {
        "rate": alerts / (duration_us / 1e6),
        "cpu_per_1000": 1000 * cpu / alerts if alerts else float("nan"),
        "errors": non2xx + socket_errors,
    }


def _repeat_file(folder: Path, tag: str, count: int = 20) -> tuple[Path, list[dict[str, object]]]:
    bodies = [body(tag, 9999, i * BATCH, "critical") for i in range(count)]
    path = folder / "repeats.jsonl"
    path.write_text("".join(json.dumps(b, separators=(",", ":")) + "\n" for b in bodies))
    return path, bodies


def measure(backend: str, seconds: float) -> dict[str, dict[str, float]]:
    folder = scratch()
    results: dict[str, dict[str, float]] = {}
    repeats, bodies = _repeat_file(folder, uuid.uuid4().hex[:8])
    with database(backend) as url:
        port = free_port()
        bare = Served([sys.executable, str(HERE / "bare_app.py"), url, str(port)], port)
        try:
            bare.wait()
            pid = bare.proc.pid
            results["parse"] = run_wrk(f"{bare.url}/parse", seconds, ["file", str(repeats)], pid)
            new = ["new", "critical", uuid.uuid4().hex[:8], str(BATCH)]
            results["insert"] = run_wrk(f"{bare.url}/insert", seconds, new, pid)
        finally:
            bare.stop()
    with database(backend) as url:
        served = serve_escalator(SHIPPED, url)
        try:
            hook = f"{served.url}/webhooks/alertmanager"
            with httpx.Client(timeout=60) as client:  # first sight: they become repeats
                for b in bodies:
                    client.post(hook, json=b).raise_for_status()
            settle(served.proc.pid)
            results["repeats"] = run_wrk(hook, seconds, ["file", str(repeats)], served.proc.pid)
        finally:
            served.stop()
    for severity in ("critical", "warning"):
        with database(backend) as url:
            served = serve_escalator(SHIPPED, url)
            try:
                new = ["new", severity, uuid.uuid4().hex[:8], str(BATCH)]
                results[f"new {severity}"] = run_wrk(
                    f"{served.url}/webhooks/alertmanager", seconds, new, served.proc.pid
                )
            finally:
                served.stop()
    return results


def storm(backend: str, alerts: int) -> dict[str, float]:
    """`alerts` new critical alerts in bodies of 100, four posts in flight, as fast as the
    daemon answers: statuses, the slowest answer, and the daemon's peak memory."""
    tag = uuid.uuid4().hex[:8]
    bodies = [json.dumps(body(tag, 1, i * BATCH, "critical")) for i in range(alerts // BATCH)]
    with database(backend) as url:
        served = serve_escalator(SHIPPED, url)
        try:
            hook = f"{served.url}/webhooks/alertmanager"

            def post(chunk: list[str]) -> list[tuple[int, float]]:
                answers = []
                with httpx.Client(timeout=120) as client:
                    for raw in chunk:
                        start = time.perf_counter()
                        code = client.post(
                            hook, content=raw, headers={"Content-Type": "application/json"}
                        ).status_code
                        answers.append((code, time.perf_counter() - start))
                return answers

            start = time.perf_counter()
            with ThreadPoolExecutor(CONNECTIONS) as pool:
                chunks = [bodies[i::CONNECTIONS] for i in range(CONNECTIONS)]
                answers = [a for part in pool.map(post, chunks) for a in part]
            elapsed = time.perf_counter() - start
            rss = peak_rss_mb(served.proc.pid)
            # The engine then declares the incidents and sends the pages: its peak counts too.
            settle(served.proc.pid, limit=150)
            settled = time.perf_counter() - start
            rss_after = peak_rss_mb(served.proc.pid)
        finally:
            served.stop()
    times = [t for _, t in answers]
    return {
        "posts": len(answers),
        "ok": sum(200 <= c < 300 for c, _ in answers),
        "elapsed": elapsed,
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "max": max(times),
        "rss": rss,
        "settled": settled,
        "rss_after": rss_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s per figure instead of 20 s")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--only", choices=("ingest", "storm"), action="append")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="ingest figures this many times, each ratio within its own run, and print "
        "the median ratio: on a shared machine one 20 s window can be 15%% off",
    )
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 20.0
    only = set(args.only or ("ingest", "storm"))
    print(machine())
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    for backend in args.backend or BACKENDS:
        if "ingest" in only:
            print(
                f"ingest ({backend}): wrk {CONNECTIONS} connections, {seconds:g} s each, "
                f"bodies of {BATCH} CredlinkServiceDown alerts, shipped config",
                flush=True,
            )
            ratios: dict[str, list[float]] = {"repeats": [], "new critical": [], "new warning": []}
            for run in range(args.runs):
                if args.runs > 1:
                    print(f" run {run + 1} of {args.runs}", flush=True)
                r = measure(backend, seconds)
                for name, m in r.items():
                    print(
                        f"  {name:<13} {m['rate']:>9,.0f} alerts/s  {m['cpu_per_1000']:6.3f} CPU s"
                        f" per 1,000 alerts  non-2xx/errors {m['errors']:.0f}",
                        flush=True,
                    )
                for name in ratios:
                    limit = r["parse"] if name == "repeats" else r["insert"]
                    ratios[name].append(r[name]["rate"] / limit["rate"])
                print(
                    f"  ratios: repeats/parse {ratios['repeats'][-1]:.2f}   "
                    f"new critical/insert {ratios['new critical'][-1]:.2f}   "
                    f"new warning/insert {ratios['new warning'][-1]:.2f}",
                    flush=True,
                )
            if args.runs > 1:
                print(
                    f"  median of {args.runs} runs (range): "
                    + "   ".join(
                        f"{name} {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
                        for name, v in ratios.items()
                    ),
                    flush=True,
                )
        if "storm" in only:
            alerts = 4_000 if args.quick else 20_000
            s = storm(backend, alerts)
            print(
                f"storm ({backend}): {alerts:,} new critical alerts, groups of {BATCH}, "
                f"{CONNECTIONS} posts at a time: {s['ok']:.0f}/{s['posts']:.0f} 2xx in "
                f"{s['elapsed']:.1f} s; answer p50 {s['p50']:.2f} s p99 {s['p99']:.2f} s "
                f"max {s['max']:.2f} s; daemon peak RSS {s['rss']:.0f} MB at the last answer, "
                f"{s['rss_after']:.0f} MB once the engine was idle again ({s['settled']:.0f} s)",
                flush=True,
            )
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
