"""Alertmanager version-4 webhook bodies for storms: many distinct alerts, cheaply.

Severity `warning`: the alerts escalate by the test's policy (routing is by the config's
`default_policy`) without also opening incidents, whose notices are not what these tests
count. Fingerprints are derived from a run tag and an index so two runs (or two tests on the same
server) never collide, and a repeat of the same index is the same alert occurrence.
"""

from __future__ import annotations

import hashlib
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
