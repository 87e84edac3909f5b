"""Alertmanager version-4 webhook bodies for storms: many distinct alerts, cheaply.

Severity `warning`: the alerts escalate by the test's policy (routing is by the config's
`default_policy`) without also opening incidents, whose notices are not what these tests
count. Fingerprints are derived from a run tag and an index so two runs (or two tests on the same
server) never collide, and a repeat of the same index is the same alert occurrence.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

STARTS_AT = "2026-03-02T18:59:47.123456789Z"


def fingerprint(tag: str, index: int) -> str:
    return hashlib.sha256(f"{tag}:{index}".encode()).hexdigest()[:16]


def storm_alert(tag: str, index: int, status: str = "firing") -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "StormAlert",
            "severity": "warning",
            "instance": f"node-{index}.credlink.internal:9100",
            "job": "node",
            "run": tag,
        },
        "annotations": {"summary": f"storm alert {index}"},
        "startsAt": STARTS_AT,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.credlink.internal:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": fingerprint(tag, index),
    }


def storm_body(tag: str, indices: range | list[int], status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "escalator",
        "status": status,
        "alerts": [storm_alert(tag, i, status) for i in indices],
        "groupLabels": {"alertname": "StormAlert"},
        "commonLabels": {"alertname": "StormAlert", "severity": "warning", "run": tag},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.credlink.internal:9093",
        "version": "4",
        "groupKey": '{}:{alertname="StormAlert"}',
        "truncatedAlerts": 0,
    }


def storm_config(
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
