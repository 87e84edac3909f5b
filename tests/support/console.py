"""What the web console's tests share: a small roster and policy, webhook bodies, form
posting with the page's CSRF token, and the system Chromium for Playwright.

The policy makes the issue's scenario observable without timing assertions: level 0
pages alice at once; level 1 (unacknowledged, after 1 s) pages bob, whose only contact
rule waits an hour, so his page sits `pending` in the outbox until an ack cancels it;
level 2 (unresolved, after 1 h) pages carol, which only "Escalate now" brings forward.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

CHROMIUM = os.environ.get("ESCALATOR_TEST_CHROMIUM", "/usr/bin/chromium")
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}

CONSOLE_CONFIG: dict[str, Any] = {
    "engine": {"tick_interval": "200ms"},
    "people": [
        {
            "id": "alice",
            "name": "Alice Oncall",
            "email": "alice@example.test",
            "rules": {"page": [{"method": "console"}], "notify": [{"method": "console"}]},
        },
        {
            "id": "bob",
            "name": "Bob Backup",
            "email": "bob@example.test",
            "rules": {
                "page": [{"method": "console", "after": "1h"}],
                "notify": [{"method": "console", "after": "1h"}],
            },
        },
        {
            "id": "carol",
            "name": "Carol Lead",
            "email": "carol@example.test",
            "rules": {"page": [{"method": "console"}], "notify": [{"method": "console"}]},
        },
    ],
    "rotations": [
        {
            "id": "primary",
            "name": "Primary on-call",
            "type": "weekly",
            "handoff_weekday": "monday",
            "handoff_time": "09:00",
            "timezone": "UTC",
            "start": "2026-01-05",
            "members": ["alice", "bob"],
        }
    ],
    "roles": {"lead": [{"person": "carol"}]},
    "policies": {
        "critical": {
            "response_time": "5m",
            "steps": [
                {"after": "0s", "targets": [{"person": "alice"}]},
                {"after": "1s", "condition": "unacknowledged", "targets": [{"person": "bob"}]},
                {"after": "1h", "condition": "unresolved", "targets": [{"role": "lead"}]},
            ],
        },
        "warning": {
            "steps": [
                {"after": "0s", "urgency": "notify", "targets": [{"rotation": "primary"}]},
                {"after": "1h", "condition": "unacknowledged", "targets": [{"person": "bob"}]},
            ]
        },
    },
    "routes": [
        {"match": {"severity": "critical"}, "policy": "critical"},
        {"match": {"severity": "warning"}, "policy": "warning"},
    ],
    "default_policy": "warning",
    "incidents": {"severities": ["critical"], "stakeholders": [{"role": "lead"}]},
}


def write_config(path: Path, **server: Any) -> Path:
    data = dict(CONSOLE_CONFIG)
    if server:
        data["server"] = server
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def webhook_body(
    alertname: str,
    severity: str = "critical",
    summary: str = "",
    fingerprint: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One firing alert as Alertmanager posts it (version 4)."""
    starts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "version": "4",
        "status": "firing",
        "receiver": "escalator",
        "groupKey": f"{{}}:{{alertname={alertname!r}}}",
        "groupLabels": {"alertname": alertname},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": alertname, "severity": severity, **labels},
                "annotations": {"summary": summary} if summary else {},
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.test/graph",
                "fingerprint": fingerprint or f"fp-{alertname}".lower()[:64],
            }
        ],
    }


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)
