"""Real processes for end-to-end tests: `escalator serve` (the one way tests start the
daemon, restartable for crash tests), Alertmanager and the CLI.

Each process writes its stdout and stderr to files (never to pipes: a chatty process
blocked on a full pipe would look like a hung daemon), so a test can read what was printed
while the process runs, and dump everything when it fails. Readiness is polled over HTTP
with a generous timeout and fails fast, with the logs, if the process dies while starting.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0


class ProcessError(AssertionError):
    """A helper process failed to start or a CLI call failed; the message carries its logs."""


def _tail(path: Path, limit: int = 20_000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no output file)"
    return text if len(text) <= limit else f"...({len(text) - limit} chars cut)...\n{text[-limit:]}"


@dataclass
class ManagedProcess:
    """A subprocess with its output in files; `stop()` is safe to call more than once."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    base_url: str = ""
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def logs(self) -> str:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return (
            f"===== {self.name} (pid {self.pid}, {state}) =====\n"
            f"argv: {' '.join(self.argv)}\n"
            f"----- {self.name} stdout -----\n{_tail(self.stdout_path)}\n"
            f"----- {self.name} stderr -----\n{_tail(self.stderr_path)}\n"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time."""
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)


def _spawn(
    name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str] | None
) -> ManagedProcess:
    """Start `argv` with its output appended to NAME.stdout.log / NAME.stderr.log (a
    restarted process adds to the same record, so a test reads every life of it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path = workdir / f"{name}.stdout.log"
    stderr_path = workdir / f"{name}.stderr.log"
    with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=dict(env) if env is not None else None,
            # Its own process group: a Ctrl-C in the test runner's terminal is not also
            # delivered to the daemon, so teardown decides how it stops.
            start_new_session=True,
        )
    return ManagedProcess(name, list(argv), popen, stdout_path, stderr_path)


def wait_ready(
    process: ManagedProcess,
    url: str,
    timeout: float = START_TIMEOUT,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll `url` until it answers 200; raise with the logs if the process dies or times out.

    `verify`: trusts the test certificate of a daemon serving HTTPS."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process.alive():
            raise ProcessError(f"{process.name} exited while starting\n{process.logs()}")
        try:
            response = httpx.get(url, timeout=2.0, verify=verify)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise ProcessError(
        f"{process.name} not ready at {url} after {timeout}s ({last})\n{process.logs()}"
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without ESCALATOR_* settings, plus `extra`.

    A developer's shell may export ESCALATOR_DATABASE_URL or ESCALATOR_SERVER; a test
    process must only see what the test means it to.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALATOR_")}
    env.update(extra)
    return env


def escalator_argv() -> list[str]:
    """The installed `escalator` console script of this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "escalator"
    if script.exists():
        return [str(script)]
    found = shutil.which("escalator")
    return [found] if found else [sys.executable, "-m", "escalator"]


class EscalatorProcess:
    """`escalator serve` on 127.0.0.1:`port`, as a user runs it (the console script).

    Restartable: `kill9()` is a power cut for this process, `start()` again runs it on the
    same store, and its output of every life is appended to the same files, so a crash test
    counts the pages printed across restarts.
    """

    def __init__(
        self,
        workdir: Path,
        config: Path,
        database_url: str,
        port: int,
        env: Mapping[str, str] | None = None,
        name: str = "escalator",
        tls: tuple[Path, Path] | None = None,
        config_after_serve: bool = False,
        log_level: str | None = None,
    ):
        self.workdir = workdir
        self.config = config
        self.database_url = database_url
        self.port = port
        self.env = dict(env) if env is not None else clean_env()
        self.name = name
        self.tls = tls
        self.config_after_serve = config_after_serve
        self.log_level = log_level
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def argv(self) -> list[str]:
        """`escalator --config C --database-url D serve --host 127.0.0.1 --port P`
        (`config_after_serve`: `... serve --config C`, as the README spells it)."""
        config = ["--config", str(self.config)]
        argv = [
            *escalator_argv(),
            *([] if self.config_after_serve else config),
            "--database-url", self.database_url,
            "serve",
            *(config if self.config_after_serve else []),
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        if self.log_level:
            argv += ["--log-level", self.log_level]
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return argv

    def start(self, wait: bool = False) -> EscalatorProcess:
        """Run it; with `wait`, return once /readyz answers 200 (stopped again if it fails).

        Without, a test starts several replicas at once and waits for each afterwards."""
        self.process = _spawn(self.name, self.argv(), self.workdir, self.env)
        self.process.base_url = self.base_url
        self.starts += 1
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.process is not None
        trust = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        try:
            wait_ready(self.process, f"{self.base_url}/readyz", timeout, verify=trust)
        except ProcessError as exc:
            if self.database_url.startswith("postgresql"):
                from tests.support.pg import pg_activity

                raise ProcessError(f"{exc}\n{pg_activity(self.database_url)}") from None
            raise

    def ready(self) -> bool:
        """/readyz answers 200 now: the schema is current and the store answers."""
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a power cut for this process."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process is not None:
            self.process.stop(timeout)

    def stdout(self) -> str:
        return self.process.stdout() if self.process is not None else ""

    def stderr(self) -> str:
        """The log without APScheduler's "skipped: maximum number of running instances"
        lines, which a slow tick repeats five times a second."""
        text = self.process.stderr() if self.process is not None else ""
        return "\n".join(x for x in text.splitlines() if "maximum number of running" not in x)

    def logs(self) -> str:
        return self.process.logs() if self.process is not None else f"{self.name}: never started"

    def pages(self) -> list[ConsolePage]:
        """The PAGE lines the console channel printed, over every life of the process."""
        return [p for p in parse_console(self.stdout()) if p.kind == "PAGE"]


# "[escalator] 2026-03-02T19:00:00Z PAGE alice (rotation primary) level 0: [CRITICAL] #1 ..."
# (notify/channels/console.py)
_CONSOLE_LINE = re.compile(
    r"^\[escalator\] \S+Z (?P<kind>PAGE|NOTIFY) (?P<who>#?[\w.-]+)\b.*?\blevel (?P<level>\d+)\b"
    r".*?#(?P<alert>\d+)\b",
    re.M,
)


@dataclass(frozen=True)
class ConsolePage:
    kind: str  # PAGE or NOTIFY
    who: str
    level: int
    alert_id: int


def parse_console(text: str) -> list[ConsolePage]:
    """Every page and notify line in what the console channel printed."""
    return [
        ConsolePage(m["kind"], m["who"], int(m["level"]), int(m["alert"]))
        for m in _CONSOLE_LINE.finditer(text)
    ]


def page_counts(processes: Sequence[EscalatorProcess]) -> Counter[tuple[int, int]]:
    """How many times each (alert id, level) was printed, over every process and restart."""
    counts: Counter[tuple[int, int]] = Counter()
    for process in processes:
        counts.update((p.alert_id, p.level) for p in process.pages())
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


def start_escalator(
    workdir: Path,
    config_path: Path,
    database_url: str,
    port: int,
    env: Mapping[str, str],
    config_after_serve: bool = False,
    tls: tuple[Path, Path] | None = None,
) -> EscalatorProcess:
    """`escalator serve` started and ready (see `EscalatorProcess`)."""
    return EscalatorProcess(
        workdir, config_path, database_url, port, env, tls=tls,
        config_after_serve=config_after_serve,
    ).start(wait=True)  # fmt: skip


def dead_pid() -> int:
    """The pid of a process that has exited (for tests of dead-owner takeover)."""
    popen = subprocess.Popen([sys.executable, "-c", "pass"])
    popen.wait()
    return popen.pid


def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run one `escalator` CLI command; raise with its output when it exits non-zero."""
    argv = [*escalator_argv(), *args]
    result = subprocess.run(
        argv,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise ProcessError(
            f"`escalator {' '.join(args)}` exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result
