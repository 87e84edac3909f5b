"""Re-make the console screenshots in docs/ui/ (phone 360 px and desktop 1280 px).

    .venv/bin/python docs/ui/capture.py

Builds a daemon on a throw-away SQLite file with the browser tests' roster, plays five
weeks of alerts on a fixed clock (fired, acknowledged, resolved, one incident with an
update, one override), serves it on loopback and photographs each page with Debian's
Chromium. The PNGs are quantised to a small palette to keep the repository light.
"""

from __future__ import annotations

import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from escalator.config import load_config  # noqa: E402
from escalator.daemon import build_daemon  # noqa: E402
from escalator.store.clock import FixedClock  # noqa: E402
from escalator.web.app import create_app  # noqa: E402
from tests.support.console import CHROMIUM, DESKTOP, PHONE, webhook_body, write_config  # noqa: E402
from tests.support.rig import Recorder  # noqa: E402
from tests.support.servers import running_server  # noqa: E402

OUT = Path(__file__).resolve().parent
PAGES = {
    "alerts": "/ui/",
    "alert": "/ui/alerts/{critical}",
    "oncall": "/ui/oncall",
    "incidents": "/ui/incidents",
    "report": "/ui/report?period=90d",
}


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def main() -> None:
    work = Path(tempfile.mkdtemp())
    config = load_config(write_config(work / "escalator.yaml"))
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(weeks=5))
    daemon = build_daemon(
        config, f"sqlite:///{work / 'db.sqlite'}", clock=clock, channels={"console": Recorder()}
    )
    app = create_app(daemon, run_engine=False)
    client = TestClient(app, client=("127.0.0.1", 4000))

    def fire(name: str, severity: str = "critical", summary: str = "", **labels: str) -> int:
        body = webhook_body(
            name, severity, summary, fingerprint=f"{name}-{clock.now():%s}", **labels
        )
        [opened] = client.post("/webhooks/alertmanager", json=body).json()["opened"]
        return int(opened)

    def post(path: str, **form: str) -> None:
        # Logged in anew each time: the fixed clock jumps past a session's lifetime.
        client.post(
            "/ui/login",
            data={"csrf": csrf(client.get("/ui/login").text), "person": "alice", "next": "/ui/"},
        )
        response = client.post(path, data={"csrf": csrf(client.get("/ui/").text), **form})
        assert response.status_code == 200, response.text

    # Five weeks of history for the report: acknowledged after a few minutes, resolved later.
    for week in range(5):
        for n in range(3):
            clock.current = now - timedelta(weeks=5 - week, hours=n * 7)
            alert_id = fire(f"History{n}", "warning", "Latency above SLO", service="api")
            clock.advance(minutes=3 + 4 * n + week)
            daemon.engine.tick()
            daemon.sender.drain()
            post(f"/ui/alerts/{alert_id}/ack")
            clock.advance(minutes=20 + 5 * n)
            post(f"/ui/alerts/{alert_id}/resolve")
    clock.current = now - timedelta(minutes=25)
    critical = fire(
        "CredLinkAPIDown",
        "critical",
        "CredLink API is down: health check failing",
        service="credlink-api",
        instance="api-1:8080",
    )
    clock.current = now - timedelta(minutes=12)
    daemon.engine.tick()
    warning = fire("DiskSpaceLow", "warning", "Disk /var at 91% on db-2", instance="db-2")
    clock.current = now - timedelta(minutes=5)
    daemon.engine.tick()
    post(f"/ui/alerts/{critical}/ack")
    post(
        f"/ui/incidents/{critical}/update",
        message="Rolled back release 4.2; error rate falling",
        status="MONITORING",
        eta="20 min",
    )
    fire("QueueBacklog", "warning", "Payment queue 12k messages behind", service="payments")
    post(f"/ui/alerts/{warning}/snooze", **{"for": "1h"})
    post(
        "/ui/oncall/overrides",
        rotation="primary",
        person="carol",
        **{
            "from": f"{now + timedelta(days=2):%Y-%m-%dT09:00}",
            "until": f"{now + timedelta(days=3):%Y-%m-%dT09:00}",
        },
    )
    clock.current = now
    daemon.engine.tick()
    daemon.sender.drain()

    with running_server(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for width_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.goto(f"{base}/ui/login")
            page.select_option("#person", "alice")
            page.click("button:has-text('Log in')")
            for name, path in PAGES.items():
                page.goto(base + path.format(critical=critical))
                target = OUT / f"{name}-{width_name}.png"
                page.screenshot(path=str(target), full_page=width_name == "phone")
                image = Image.open(target)
                if image.height > 2200:  # a long phone page: the top is what matters
                    image = image.crop((0, 0, image.width, 2200))
                image.convert("RGB").quantize(colors=64).save(target, optimize=True)
                print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KiB")
            context.close()
        browser.close()
    daemon.stop()


if __name__ == "__main__":
    main()
