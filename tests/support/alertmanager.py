"""A real Prometheus Alertmanager (Debian's build) on loopback, delivering to escalator.

Standalone (`--cluster.listen-address=` empty: no gossip port), with short group timers so
a test sees deliveries within seconds, and the webhook's bearer token set the way an
operator sets it in alertmanager.yml (`http_config.authorization`).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from escalator.engine.runner import wait_until

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


class Alertmanager:
    def __init__(self, port: int, webhook_url: str, token: str, workdir: Path | None = None):
        self.port = port
        self.root = workdir or Path(tempfile.mkdtemp(prefix="escalator-am-"))
        self.config = self.root / "alertmanager.yml"
        self.config.write_text(
            "route:\n"
            "  receiver: escalator\n"
            "  group_by: [alertname]\n"
            "  group_wait: 1s\n"
            "  group_interval: 2s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: escalator\n"
            "    webhook_configs:\n"
            f"      - url: {webhook_url}\n"
            "        send_resolved: true\n"
            "        http_config:\n"
            "          authorization:\n"
            "            type: Bearer\n"
            f"            credentials: {token}\n"
        )
        self.log = self.root / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            ALERTMANAGER,
            f"--config.file={self.config}",
            f"--storage.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(ready, 60, poll=0.2):
            raise TimeoutError(f"alertmanager not ready:\n{self.log.read_text()[-3000:]}")

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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
