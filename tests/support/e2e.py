"""The end-to-end rig shared by the Alertmanager tests: a compressed copy of the shipped
config, Alertmanager's config, and `Stack`, the running escalator + Alertmanager pair with
the CLI and API calls the tests make on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from escalator.config import Config, load_config
from escalator.config.durations import parse_duration
from tests.support.alertmanager import alertmanager_config, start_alertmanager, webhook_url
from tests.support.helpers import SHIPPED_CONFIG
from tests.support.ports import free_port
from tests.support.processes import (
    ConsolePage,
    EscalatorProcess,
    ManagedProcess,
    ProcessError,
    clean_env,
    parse_console,
    run_cli,
    start_escalator,
)

# Compressed time: every duration in a policy shrinks by its factor. Critical: a minute
# becomes a second (levels at 0, 5, 15, 30, 45 s), which keeps the shipped proportions: the
# CLI ack after level 1 normally lands well before level 2. Warning: its 30 min response
# time becomes 15 s, so test 2's ack normally lands before that level comes due. Either
# way the tests check what happened, whichever came first: no assertion rests on timing.
TIME_SCALE = {"critical": 1 / 60, "warning": 1 / 120}
DEFAULT_SCALE = 1 / 60
WAIT = 60.0  # generous: the machine is shared and noisy

T = TypeVar("T")


def _scaled(value: Any, factor: float) -> str:
    """A YAML duration (`5m`, or a number of seconds) times `factor`, as milliseconds."""
    delta = timedelta(seconds=value) if isinstance(value, int | float) else parse_duration(value)
    seconds = delta.total_seconds() * factor
    return f"{round(seconds * 1000)}ms"


def compressed_config(path: Path) -> Config:
    """Write the shipped config with its policies' durations compressed; return it parsed."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data.setdefault("engine", {})["tick_interval"] = "250ms"
    for name, policy in data["policies"].items():
        factor = TIME_SCALE.get(name, DEFAULT_SCALE)
        for step in policy["steps"]:
            step["after"] = _scaled(step.get("after", 0), factor)
        for key in ("response_time", "ack_timeout"):
            if policy.get(key) is not None:
                policy[key] = _scaled(policy[key], factor)
        if policy.get("repeat"):
            policy["repeat"]["every"] = _scaled(policy["repeat"]["every"], factor)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Stack:
    """One escalator daemon and one Alertmanager in front of it, plus CLI access."""

    workdir: Path
    config_path: Path
    config: Config
    database_url: str
    webhook_token: str
    api_token: str
    escalator: EscalatorProcess
    alertmanager: ManagedProcess
    processes: list[EscalatorProcess | ManagedProcess] = field(default_factory=list)

    # The CLI ----------------------------------------------------------------------------

    def cli(self, *args: str, remote: bool = False, token: str | None = None) -> str:
        """Run `escalator ...` on the database, or through the daemon with --server."""
        base = ["--config", str(self.config_path)]
        if remote:
            base += ["--server", self.escalator.base_url, "--token", token or self.api_token]
        else:
            base += ["--database-url", self.database_url]
        return run_cli([*base, *args], clean_env(), self.workdir).stdout

    def cli_json(self, *args: str, remote: bool = False) -> Any:
        return json.loads(self.cli(*args, "-o", "json", remote=remote))

    def show(self, alert_id: int, remote: bool = False) -> dict[str, Any]:
        shown = self.cli_json("show", str(alert_id), remote=remote)
        assert isinstance(shown, dict)
        return shown

    def alerts(self, include_resolved: bool = True, remote: bool = False) -> list[dict[str, Any]]:
        args = ["list", "--all"] if include_resolved else ["list"]
        listed = self.cli_json(*args, remote=remote)
        assert isinstance(listed, list)
        return listed

    # The daemon's API, for cheap polling (each CLI call is a process start); what is
    # asserted is then read once more through the CLI.

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(
            f"{self.escalator.base_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.api_token}"},
            timeout=15,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def polled_show(self, alert_id: int) -> dict[str, Any]:
        shown = self.api(f"/api/v1/alerts/{alert_id}")
        assert isinstance(shown, dict)
        return shown

    def polled_alerts(self) -> list[dict[str, Any]]:
        listed = self.api("/api/v1/alerts", all="true")
        assert isinstance(listed, list)
        return listed

    # Alertmanager's API ------------------------------------------------------------------

    def post_alert(
        self,
        labels: dict[str, str],
        starts_at: datetime,
        ends_at: datetime | None = None,
        summary: str = "",
    ) -> None:
        """POST /api/v2/alerts, as Prometheus would; ends_at in the past resolves it."""
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": summary} if summary else {},
            "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
            "generatorURL": "http://prometheus.e2e.test/graph",
        }
        if ends_at is not None:
            alert["endsAt"] = ends_at.isoformat().replace("+00:00", "Z")
        response = httpx.post(f"{self.alertmanager.base_url}/api/v2/alerts", json=[alert])
        assert response.status_code == 200, response.text

    def metric(self, sample: str) -> float:
        """One sample of escalator's /metrics (0 when absent)."""
        text = httpx.get(f"{self.escalator.base_url}/metrics", timeout=10).text
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0

    # Waiting -------------------------------------------------------------------------------

    def console_pages(self, alert_id: int) -> list[ConsolePage]:
        """The page lines escalator printed for one alert (the console channel)."""
        return [p for p in parse_console(self.escalator.stdout()) if p.alert_id == alert_id]

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
        """Poll `probe` until it returns something truthy; fail naming `what` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            for process in self.processes:
                if not process.alive():
                    raise ProcessError(f"{process.name} died while waiting for {what}")
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.25)

    def wait_for_alert(self, alertname: str, remote: bool = False) -> dict[str, Any]:
        def probe() -> bool:
            return any(a["alertname"] == alertname for a in self.polled_alerts())

        self.wait_for(f"escalator to open an alert for {alertname}", probe)
        found = [a for a in self.alerts(remote=remote) if a["alertname"] == alertname]
        assert len(found) == 1, found
        return found[0]

    @contextmanager
    def dump_logs_on_failure(self) -> Iterator[None]:
        """On any failure print both processes' logs (pytest shows them with the failure)."""
        try:
            yield
        except BaseException:
            for process in self.processes:
                print(process.logs())
            raise


def start_stack(
    workdir: Path,
    config_path: Path,
    config: Config,
    database_url: str,
    escalator_port: int,
    webhook_token: str,
    api_token: str,
    env: dict[str, str],
    started: list[EscalatorProcess | ManagedProcess],
    config_after_serve: bool = False,
) -> Stack:
    """Start escalator, then an Alertmanager posting to it. Each process is appended to
    `started` as soon as it runs, so the caller's teardown stops it if the next one fails."""
    escalator = start_escalator(
        workdir, config_path, database_url, escalator_port, env, config_after_serve
    )
    started.append(escalator)
    am_config = workdir / "alertmanager.yml"
    alertmanager_config(am_config, webhook_url(escalator_port), webhook_token)
    alertmanager = start_alertmanager(workdir, am_config, free_port())
    started.append(alertmanager)
    return Stack(
        workdir=workdir,
        config_path=config_path,
        config=config,
        database_url=database_url,
        webhook_token=webhook_token,
        api_token=api_token,
        escalator=escalator,
        alertmanager=alertmanager,
        processes=[escalator, alertmanager],
    )
