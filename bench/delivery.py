"""Delivery: how fast and how exactly-once pages leave real `escalator serve` processes.

Black-box: real daemons over loopback, fake providers that stamp each send on this
script's clock; nothing here knows how the sender is built, so it runs against any
version (the first figures, on the sequential sender, are the baseline of issue 10).

  fanout    one critical alert paging 30 and 100 people by SMS: from the webhook's 2xx
            to the LAST SMS the fake Twilio accepted, with Twilio answering at 0 ms and
            at 300 ms per request, without and with email also configured for the same
            people on a hung SMTP relay (accepts TCP, never answers: each email waits
            for the channel's timeout). Capped: "> CAP" means not all were sent by then.
  replicas  three replicas on one PostgreSQL, one alert paging 40 generic-webhook
            channels whose receiver takes 1.5 s per message, the shipped send lease:
            deliveries the receiver counted vs pages (outbox rows); the rest are
            duplicates. PostgreSQL only.
  kills     a storm of N alerts (level 0 pages one person on the console) while the
            daemon is SIGKILLed 20 times and restarted at once each time: open->page
            latency p50/p99 of the level-0 pages (sent_at - opened_at, from the store),
            and duplicates (console lines beyond one per page) per kill.

Run: python bench/delivery.py [--quick] [--backend sqlite|postgresql] [--only NAME]
                              [--runs N]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))  # `tests.fakes...` for the fake Twilio
from _fakes import HungSmtp, SlowReceiver, SlowTwilio  # noqa: E402
from common import (  # noqa: E402
    BACKENDS,
    database,
    free_port,
    machine,
    median,
    percentile,
    scratch,
    storm_body,
)

from escalator.store.db import make_engine  # noqa: E402
from escalator.store.tables import AlertRow, OutboxRow  # noqa: E402
from tests.support.payloads import storm_config  # noqa: E402
from tests.support.processes import (  # noqa: E402
    EscalatorProcess,
    page_counts,
    post_until_accepted,
)

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "bench-twilio-token"
SECTIONS = ("fanout", "replicas", "kills")
NAN = float("nan")


def uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def wait_for(done: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(poll)
    return done()


@contextmanager
def daemon(name: str, config: Path, url: str, folder: Path) -> Iterator[EscalatorProcess]:
    """A daemon for one measurement, SIGKILLed after it: once the figure is taken there is
    nothing to keep, and a graceful stop would wait out a hung email first."""
    proc = EscalatorProcess(folder, config, url, free_port(), name=name, log_level="warning")
    try:
        proc.start()
        proc.wait_ready(timeout=120)
        yield proc
    finally:
        if proc.alive():
            proc.kill9()


def critical_body(tag: str) -> dict[str, Any]:
    """One Alertmanager body with one critical alert."""
    body = storm_body(tag, [0])
    body["alerts"][0]["labels"]["severity"] = "critical"
    body["commonLabels"]["severity"] = "critical"
    return body


# fanout -----------------------------------------------------------------------------------


def fanout_config(
    folder: Path, people: int, twilio_url: str, smtp_port: int | None, smtp_timeout: str
) -> Path:
    """`people` people on one team, paged at level 0 by SMS (and email when a relay is
    given: both at once, as the default rules send them); incidents off, so only pages."""
    (folder / "twilio_token").write_text(AUTH_TOKEN)
    methods = "[{method: sms}, {method: email}]" if smtp_port else "[{method: sms}]"
    roster = "".join(
        f'  - id: u{i}\n    phone: "+1555030{i:04d}"\n    email: u{i}@bench.example\n'
        f"    rules: {{page: {methods}}}\n"
        for i in range(people)
    )
    members = ", ".join(f"u{i}" for i in range(people))
    email = (
        f"  email:\n    host: 127.0.0.1\n    port: {smtp_port}\n    security: none\n"
        f"    from_address: escalator@bench.example\n    timeout: {smtp_timeout}\n"
        if smtp_port
        else ""
    )
    path = folder / "escalator.yaml"
    path.write_text(
        "engine:\n  tick_interval: 1s\n"
        f"people:\n{roster}"
        f"teams:\n  - id: everyone\n    members: [{members}]\n"
        "policies:\n  fanout:\n    steps:\n      - after: 0s\n        targets: [{team: everyone}]\n"
        "default_policy: fanout\n"
        "incidents:\n  enabled: false\n  multiple_critical: {enabled: false}\n"
        "channels:\n"
        f"  twilio:\n    account_sid: {ACCOUNT_SID}\n"
        f"    auth_token: {{file: {folder / 'twilio_token'}}}\n"
        f'    from_number: "+15550109999"\n    voice: false\n'
        f"    api_base_url: {twilio_url}\n"
        f"{email}"
    )
    return path


@dataclass
class FanoutResult:
    seconds: float  # webhook 2xx -> last SMS; NaN when capped
    sent: int


def measure_fanout(
    backend: str, people: int, delay: float, hung: bool, cap: float, smtp_timeout: str
) -> FanoutResult:
    folder = scratch()
    with ExitStack() as stack:
        twilio = SlowTwilio(ACCOUNT_SID, AUTH_TOKEN, delay=delay).start()
        stack.callback(twilio.stop)
        smtp = HungSmtp() if hung else None
        if smtp is not None:
            stack.callback(smtp.stop)
        config = fanout_config(
            folder, people, twilio.base_url, smtp.port if smtp else None, smtp_timeout
        )
        url = stack.enter_context(database(backend))
        proc = stack.enter_context(daemon("fanout", config, url, folder))
        with httpx.Client(timeout=30) as client:
            response = client.post(
                f"{proc.url}/webhooks/alertmanager", json=critical_body(uuid.uuid4().hex[:8])
            )
            committed = time.perf_counter()
            response.raise_for_status()
        wait_for(lambda: len(twilio.messages()) >= people, cap)
        sent = len(twilio.messages())
        last = max(twilio.stamps, default=NAN)
        return FanoutResult(last - committed if sent >= people else NAN, sent)


# replicas ---------------------------------------------------------------------------------


def replicas_config(folder: Path, receiver: SlowReceiver, targets: int) -> Path:
    lines = []
    for i in range(targets):
        secret = folder / f"hook{i}"
        secret.write_text(receiver.url(f"/hook{i}"))
        lines.append(f"      hook{i}: {{file: {secret}}}\n")
    names = ", ".join(f"{{channel: hook{i}}}" for i in range(targets))
    path = folder / "escalator.yaml"
    path.write_text(
        "engine:\n  tick_interval: 1s\n"  # send_lease: the shipped 30s
        "people:\n  - id: nobody\n"
        f"policies:\n  slow:\n    steps:\n      - after: 0s\n        targets: [{names}]\n"
        "default_policy: slow\n"
        "incidents:\n  enabled: false\n  multiple_critical: {enabled: false}\n"
        "channels:\n  webhook:\n    timeout: 10s\n    endpoints:\n" + "".join(lines)
    )
    return path


@dataclass
class ReplicasResult:
    pages: int
    deliveries: int
    seconds: float  # 2xx -> last delivery


def pages_settled(url: str) -> tuple[int, bool]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(OutboxRow.status, func.count())
                    .where(OutboxRow.level.is_not(None))
                    .group_by(OutboxRow.status)
                )
            )
    finally:
        engine.dispose()
    total = sum(n for _, n in rows)
    open_ = sum(n for status, n in rows if status in ("pending", "sending"))
    return total, total > 0 and open_ == 0


def measure_replicas(targets: int, delay: float, cap: float) -> ReplicasResult:
    folder = scratch()
    receiver = SlowReceiver(delay)
    try:
        config = replicas_config(folder, receiver, targets)
        with database("postgresql") as url:
            procs = [
                EscalatorProcess(
                    folder, config, url, free_port(), name=f"r{i}", log_level="warning"
                )
                for i in range(3)
            ]
            try:
                for proc in procs:
                    proc.start()
                for proc in procs:
                    proc.wait_ready(timeout=120)
                with httpx.Client(timeout=30) as client:
                    post_until_accepted(client, [procs[0].url], critical_body(uuid.uuid4().hex[:8]))
                committed = time.perf_counter()
                wait_for(lambda: pages_settled(url)[1], cap, poll=0.5)
                # A replica may still be sending a page another replica already marked sent:
                # wait until the receiver has been quiet for longer than one message.
                quiet = delay * 2 + 1.0
                wait_for(
                    lambda: (
                        time.perf_counter() - receiver.last() > quiet if receiver.stamps else False
                    ),
                    cap,
                    poll=0.2,
                )
                pages, _ = pages_settled(url)
            finally:
                for proc in procs:
                    proc.stop()
        return ReplicasResult(pages, receiver.total(), receiver.last() - committed)
    finally:
        receiver.stop()


# kills ------------------------------------------------------------------------------------


@dataclass
class KillsResult:
    p50: float
    p99: float
    pages: int
    duplicates: int
    missing: int
    kills: int


def measure_kills(backend: str, alerts: int, kills: int, cap: float) -> KillsResult:
    folder = scratch()
    # One level that matters (the second is an hour away); a short lease, as in
    # tests/test_crash.py, so a killed sender's leased pages come back within seconds.
    config = storm_config(folder / "escalator.yaml", (0, 3600), send_lease="3s")
    group = 10
    posts = (alerts + group - 1) // group
    interval = min(1.0, max(0.02, kills * 1.5 / posts))  # spread the storm over the kills
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(7)
    with database(backend) as url:
        proc = EscalatorProcess(folder, config, url, free_port(), name="storm", log_level="warning")
        proc.start()
        proc.wait_ready(timeout=120)
        errors: list[BaseException] = []

        def storm() -> None:
            try:
                with httpx.Client(timeout=10) as client:
                    for start in range(0, alerts, group):
                        body = storm_body(tag, range(start, min(start + group, alerts)))
                        post_until_accepted(client, [proc.url], body, timeout=300)
                        time.sleep(interval)
            except BaseException as exc:
                errors.append(exc)

        poster = threading.Thread(target=storm, daemon=True)
        try:
            poster.start()
            done = 0
            for _ in range(kills):
                time.sleep(rng.uniform(0.3, 1.2))  # let it work between kills
                proc.kill9()
                done += 1
                proc.start()  # at once, as systemd's Restart=always would
                proc.wait_ready(timeout=120)
            poster.join(timeout=cap)
            if errors:
                raise errors[0]

            def unsent() -> int:
                engine = make_engine(url)
                try:
                    with engine.connect() as conn:
                        total = conn.scalar(select(func.count()).select_from(AlertRow)) or 0
                        open_ = conn.scalar(
                            select(func.count()).where(
                                OutboxRow.level == 0, OutboxRow.status != "sent"
                            )
                        )
                        return int(open_ or 0) + (alerts - int(total))
                finally:
                    engine.dispose()

            wait_for(lambda: unsent() == 0, cap, poll=0.5)
            time.sleep(1.0)  # the last line reaches the stdout file
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    delays = [
                        (_aware(sent) - _aware(opened)).total_seconds()
                        for sent, opened in conn.execute(
                            select(OutboxRow.sent_at, AlertRow.opened_at)
                            .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
                            .where(OutboxRow.level == 0, OutboxRow.status == "sent")
                        )
                    ]
            finally:
                engine.dispose()
        finally:
            proc.stop()
        counts = {key: n for key, n in page_counts([proc]).items() if key[1] == 0}
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    return KillsResult(
        percentile(delays, 50),
        percentile(delays, 99),
        len(counts),
        duplicates,
        alerts - len(counts),
        done,
    )


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


# main -------------------------------------------------------------------------------------


def _s(value: float, cap: float) -> str:
    return f"> {cap:.0f} s" if value != value else f"{value:6.2f} s"


def run_fanout(backends: list[str], runs: int, cap: float, smtp_timeout: str) -> None:
    print(
        f"\n[fanout] webhook 2xx -> last SMS, one critical alert; median of {runs} run(s);"
        f" cap {cap:.0f} s; hung-SMTP email timeout {smtp_timeout}",
        flush=True,
    )
    print(f"  {'backend':<10} {'people':>6} {'twilio':>7} {'email':<14} {'last SMS':>10}  sent")
    for backend in backends:
        for people in (30, 100):
            for delay in (0.0, 0.3):
                for hung in (False, True):
                    results = [
                        measure_fanout(backend, people, delay, hung, cap, smtp_timeout)
                        for _ in range(runs)
                    ]
                    seconds = [r.seconds for r in results]
                    value = NAN if any(s != s for s in seconds) else median(seconds)
                    sent = min(r.sent for r in results)
                    print(
                        f"  {backend:<10} {people:>6} {delay * 1000:>5.0f}ms"
                        f" {'hung SMTP' if hung else 'none':<14} {_s(value, cap):>10}"
                        f"  {sent}/{people}",
                        flush=True,
                    )
    print(f"  {uptime()}")


def run_replicas(backends: list[str], runs: int, cap: float) -> None:
    targets, delay = 40, 1.5
    print(
        f"\n[replicas] 3 replicas on PostgreSQL, 1 alert -> {targets} webhook channels,"
        f" receiver {delay:g} s/message, send_lease 30s; median of {runs} run(s)",
        flush=True,
    )
    if "postgresql" not in backends:
        print("  skipped: PostgreSQL only (--backend postgresql)")
        return
    results = [measure_replicas(targets, delay, cap) for _ in range(runs)]
    pages = median([r.pages for r in results])
    deliveries = median([r.deliveries for r in results])
    seconds = median([r.seconds for r in results])
    print(
        f"  pages {pages:.0f}, deliveries {deliveries:.0f}, duplicates {deliveries - pages:.0f}"
        f" (runs: {', '.join(f'{r.deliveries}/{r.pages}' for r in results)}),"
        f" last delivery after {seconds:.1f} s",
        flush=True,
    )
    print(f"  {uptime()}")


def run_kills(backends: list[str], runs: int, alerts: int, kills: int, cap: float) -> None:
    print(
        f"\n[kills] storm of {alerts} alerts, {kills} SIGKILLs (restart at once),"
        f" send_lease 3s; median of {runs} run(s)",
        flush=True,
    )
    for backend in backends:
        results = [measure_kills(backend, alerts, kills, cap) for _ in range(runs)]
        p50 = median([r.p50 for r in results])
        p99 = median([r.p99 for r in results])
        dup = median([r.duplicates for r in results])
        missing = max(r.missing for r in results)
        done = results[0].kills
        print(
            f"  {backend:<10} open->page p50 {p50:6.2f} s  p99 {p99:6.2f} s;"
            f" duplicates {dup:.0f} ({dup / max(done, 1):.2f}/kill); pages missing {missing}",
            flush=True,
        )
    print(f"  {uptime()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="storm of 300, 1 run, 60 s cap")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--only", choices=SECTIONS, action="append")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; --quick 1)")
    parser.add_argument("--alerts", type=int, help="storm size for kills (default 2000)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--cap", type=float, help="give up on a figure after this many s")
    parser.add_argument(
        "--smtp-timeout", default="10s", help="channels.email.timeout for the hung relay"
    )
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    alerts = args.alerts or (300 if args.quick else 2000)
    cap = args.cap or (60.0 if args.quick else 300.0)
    backends = args.backend or list(BACKENDS)
    sections = args.only or list(SECTIONS)
    print(machine())
    print(uptime(), flush=True)
    if "fanout" in sections:
        run_fanout(backends, runs, cap, args.smtp_timeout)
    if "replicas" in sections:
        run_replicas(backends, runs, cap * 2)
    if "kills" in sections:
        run_kills(backends, runs, alerts, args.kills, cap * 3)


if __name__ == "__main__":
    main()
