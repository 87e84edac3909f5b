"""What every bench script shares: the machine note, medians, databases, a served daemon.

Figures are only comparable on the same machine, so every script prints `machine()` first.
Servers run as real processes over loopback (uvicorn, as in production); the client runs in
the bench process, which competes for the same cores: say so when quoting figures.
"""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # reuse the test helpers: payloads, fresh databases

from tests.support.payloads import storm_alert, storm_body  # noqa: E402
from tests.support.pg import PG_SERVER, fresh_database  # noqa: E402

__all__ = ["storm_alert", "storm_body"]

BACKENDS = ("sqlite", "postgresql")

# Config files and SQLite databases of one bench run live here and go when it ends.
WORKDIR = Path(tempfile.mkdtemp(prefix="escalator-bench-"))
atexit.register(shutil.rmtree, WORKDIR, True)


def scratch() -> Path:
    """A new folder inside this run's WORKDIR."""
    return Path(tempfile.mkdtemp(dir=WORKDIR))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} cpus ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, load avg {load[0]:.2f} {load[1]:.2f}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh, empty database of `backend` for one measurement."""
    if backend == "sqlite":
        folder = scratch()
        try:
            yield f"sqlite:///{folder / 'bench.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        with fresh_database(PG_SERVER, prefix="escalator_bench") as url:
            yield url


def write_config(path: Path, levels: tuple[int, ...] = (0, 300, 600), tick: str = "1s") -> Path:
    """One person per level, `unresolved` steps, console channel; bundling off for chat."""
    people = "\n".join(f"  - id: p{i}\n    name: Person {i}" for i in range(len(levels)))
    steps = "\n".join(
        f"      - after: {s}s\n        condition: unresolved\n        targets: [{{person: p{i}}}]"
        for i, s in enumerate(levels)
    )
    path.write_text(
        f"engine:\n  tick_interval: {tick}\n"
        f"people:\n{people}\n"
        f"policies:\n  bench:\n    steps:\n{steps}\n"
        f"default_policy: bench\n"
    )
    return path


class Served:
    """A process serving HTTP on a free loopback port; stdout goes where the caller says."""

    def __init__(self, argv: list[str], port: int, stdout: int | None = subprocess.DEVNULL):
        self.port = port
        handle, name = tempfile.mkstemp(prefix="escalator-bench-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=stdout, stderr=log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, path: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.unlink(missing_ok=True)


def serve_escalator(
    config: Path, database_url: str, stdout: int | None = subprocess.DEVNULL
) -> Served:
    port = free_port()
    argv = [
        sys.executable, "-c", "from escalator.cli.main import run; run()",
        "--config", str(config), "--database-url", database_url,
        "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    served = Served(argv, port, stdout)
    served.wait("/readyz")
    return served


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
