"""A real `escalator serve` process, and what it printed.

The console channel prints one line per page on standard output, so a test counts pages
at the sending side by reading the processes' stdout files, across every process and every
restart (the file is opened for append, so a restarted process adds to the same record).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from escalator.engine.runner import wait_until

# "[escalator] 2026-03-02T19:00:00Z PAGE p1 (person) level 1: [CRITICAL] #17 StormAlert ..."
_PAGE = re.compile(
    r"^\[escalator\] \S+Z PAGE (\S+).*? level (\d+): \[[A-Z]+\] #(\d+) ", re.M
)


@dataclass(frozen=True)
class PageLine:
    recipient: str
    level: int
    alert_id: int


def compressed_config(
    path: Path,
    level_seconds: tuple[int, ...] = (0, 2, 4),
    tick: str = "200ms",
    send_lease: str = "2s",
    token_env: str | None = None,
) -> Path:
    """A config whose one policy pages person p<i> at `level_seconds[i]`, whatever the state.

    `unresolved` conditions make every level fire for every alert (nobody acks), so a test
    knows exactly which pages must exist: one per (alert, level). A short send lease makes a
    crashed sender's leased pages come back within the test's patience.
    """
    people = "\n".join(f"  - id: p{i}\n    name: Person {i}" for i in range(len(level_seconds)))
    steps = "\n".join(
        f"      - after: {s}s\n        condition: unresolved\n        targets: [{{person: p{i}}}]"
        for i, s in enumerate(level_seconds)
    )
    server = (
        f"server:\n  webhook_token: {{env: {token_env}}}\n  api_token: {{env: {token_env}}}\n"
        if token_env
        else ""
    )
    path.write_text(
        f"{server}"
        f"engine:\n  tick_interval: {tick}\n  send_lease: {send_lease}\n"
        f"  send_retry_base: 200ms\n"
        f"people:\n{people}\n"
        f"policies:\n  storm:\n    steps:\n{steps}\n"
        f"default_policy: storm\n"
    )
    return path


def parse_pages(text: str) -> list[PageLine]:
    return [PageLine(m[1], int(m[2]), int(m[3])) for m in _PAGE.finditer(text)]


class EscalatorProcess:
    """`escalator serve` (this interpreter) on 127.0.0.1:`port`; stdout/stderr appended to files."""

    def __init__(
        self,
        name: str,
        config: Path,
        database_url: str,
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.config = config
        self.database_url = database_url
        self.port = port
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            # Not `-m escalator.cli.main`: as __main__ the module would be imported twice.
            sys.executable, "-c", "from escalator.cli.main import main; main()",
            "--config", str(self.config),
            "--database-url", self.database_url,
            "serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env)
        self.starts += 1

    def ready(self) -> bool:
        """/readyz answers 200: the schema is current and the store answers."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.stderr()}")
            return self.ready()

        if not wait_until(up, timeout, poll=0.1):
            from faults.pg import pg_activity

            raise TimeoutError(
                f"{self.name} not ready after {timeout}s:\n{self.stderr()}\n"
                f"{pg_activity(self.database_url)}"
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a power cut for this process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def stdout(self) -> str:
        return self.stdout_path.read_text() if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        """The end of the log, without APScheduler's "skipped: maximum number of running
        instances" lines, which a slow tick repeats five times a second and which would
        push the interesting lines out."""
        text = self.stderr_path.read_text() if self.stderr_path.exists() else ""
        kept = [line for line in text.splitlines() if "maximum number of running" not in line]
        return "\n".join(kept)[-6000:]

    def pages(self) -> list[PageLine]:
        return parse_pages(self.stdout())


def page_counts(processes: list[EscalatorProcess]) -> Counter[tuple[int, int]]:
    """How many times each (alert id, level) was printed, over every process and restart."""
    counts: Counter[tuple[int, int]] = Counter()
    for proc in processes:
        counts.update((p.alert_id, p.level) for p in proc.pages())
    return counts


def post_until_accepted(
    client: httpx.Client,
    urls: list[str],
    body: dict[str, object],
    token: str | None = None,
    timeout: float = 120,
) -> int:
    """POST like Alertmanager: retry on connection errors and 5xx until a 2xx (rotating
    over `urls`); a 4xx is a bug in the test, raised at once. Returns how many tries."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        url = urls[tries % len(urls)]
        tries += 1
        try:
            response = client.post(f"{url}/webhooks/alertmanager", json=body, headers=headers)
            if response.status_code < 300:
                return tries
            if response.status_code < 500:
                raise AssertionError(f"{url} answered {response.status_code}: {response.text}")
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no 2xx from {urls} within {timeout}s")
        time.sleep(0.1)
