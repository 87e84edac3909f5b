"""Debian's Alertmanager on loopback, delivering to escalator: the one way tests write its
config and start it.

Standalone (`--cluster.listen-address=` empty: no gossip port, no peers, no settling), with
short group timers so a test sees deliveries within seconds, and the webhook's bearer
token set the way an operator sets it in alertmanager.yml (`http_config.authorization`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import yaml

from escalator.config.durations import parse_duration
from tests.support.helpers import ROOT
from tests.support.processes import ManagedProcess, ProcessError, _spawn, clean_env, wait_ready

ALERTMANAGER_SHIPPED = ROOT / "config" / "alertmanager.yml"


def webhook_url(escalator_port: int) -> str:
    return f"http://127.0.0.1:{escalator_port}/webhooks/alertmanager"


def alertmanager_config(
    path: Path, url: str, token: str, group_interval: str = "1s"
) -> None:
    """An Alertmanager config like config/alertmanager.yml posting to `url`, waits of a second."""
    config = {
        "route": {
            "receiver": "escalator",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": group_interval,
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "escalator",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials": token},
                        },
                    }
                ],
            }
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def shipped_alertmanager_config(path: Path, escalator_port: int, token: str) -> dict[str, Any]:
    """config/alertmanager.yml itself (its routes, the Watchdog's included), pointed at the
    test daemon with the test token, every wait of the routing tree shrunk sixty-fold
    (at least a second): the Watchdog's one-minute repeat becomes a second."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_SHIPPED.read_text())

    def shrink(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                seconds = parse_duration(route[key]).total_seconds() / 60
                route[key] = f"{max(1, round(seconds))}s" if key != "group_wait" else "0s"
        for child in route.get("routes", []):
            shrink(child)

    shrink(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url(escalator_port)
            hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": token}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config


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


class Alertmanager:
    """A running Alertmanager posting to `url`, with Prometheus' side of its API."""

    def __init__(self, workdir: Path, port: int, url: str, token: str):
        self.workdir = workdir
        self.port = port
        self.config = workdir / "alertmanager.yml"
        alertmanager_config(self.config, url, token, group_interval="2s")
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        self.process = start_alertmanager(self.workdir, self.config, self.port)
        return self

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Alerts as Prometheus sends them (API v2); Alertmanager groups and forwards them."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        response.raise_for_status()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels` (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
            if match and all(f'{k}="{v}"' in (match[1] or "") for k, v in labels.items()):
                total += float(match[2])
        return total

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
