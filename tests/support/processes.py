"""Real processes for end-to-end tests: `escalator serve`, Alertmanager and the CLI.

Each process writes its stdout and stderr to files (never to pipes: a chatty process
blocked on a full pipe would look like a hung daemon), so a test can read what was printed
while the process runs, and dump everything when it fails. Readiness is polled over HTTP
with a generous timeout and fails fast, with the logs, if the process dies while starting.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
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
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path = workdir / f"{name}.stdout.log"
    stderr_path = workdir / f"{name}.stderr.log"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
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


def start_escalator(
    workdir: Path,
    config_path: Path,
    database_url: str,
    port: int,
    env: Mapping[str, str],
    config_after_serve: bool = False,
    tls: tuple[Path, Path] | None = None,
) -> ManagedProcess:
    """`escalator --config C --database-url D serve --port P` on 127.0.0.1; waits for /readyz.

    `config_after_serve` spells it `escalator ... serve --config C`, as the README does.
    `tls` (certificate, key) serves HTTPS; the certificate is also the CA that trusts it.
    """
    config = ["--config", str(config_path)]
    argv = [
        *escalator_argv(),
        *([] if config_after_serve else config),
        "--database-url",
        database_url,
        "serve",
        *(config if config_after_serve else []),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if tls is not None:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    process = _spawn("escalator", argv, workdir, env)
    process.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        trust = ssl.create_default_context(cafile=str(tls[0])) if tls else True
        wait_ready(process, f"{process.base_url}/readyz", verify=trust)
    except BaseException:
        process.stop()
        raise
    return process


def alertmanager_binary() -> str:
    """Debian's `prometheus-alertmanager` (installed by .ci/run), or upstream's name."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    raise ProcessError(
        "Alertmanager is not installed: run `bash .ci/run` or "
        "`apt-get install prometheus-alertmanager`"
    )


def start_alertmanager(workdir: Path, config_path: Path, port: int) -> ManagedProcess:
    """A single, unclustered Alertmanager on 127.0.0.1:`port` with private storage."""
    storage = workdir / "alertmanager-data"
    storage.mkdir(parents=True, exist_ok=True)
    argv = [
        alertmanager_binary(),
        f"--config.file={config_path}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Empty disables clustering: no gossip port, no peers, no waiting to settle.
        "--cluster.listen-address=",
        "--log.level=info",
    ]
    process = _spawn("alertmanager", argv, workdir, clean_env())
    process.base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, f"{process.base_url}/-/ready")
    except BaseException:
        process.stop()
        raise
    return process


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
