"""Heartbeat monitors (dead man's switches), the pure part: when a heartbeat is overdue,
which Alertmanager alerts are beats, and what the alert for a missed heartbeat says.

If Prometheus or Alertmanager dies, escalator hears nothing and would page no one. An
always-firing alert (Watchdog) that Alertmanager re-sends every `repeat_interval`, or a
cron job that posts after each run, proves the pipe is alive; silence past `interval +
grace` is itself the alert. Nothing here reads a clock or a database: the shell (the
engine's heartbeat step, the webhook) passes `now`, the last beat and the daemon's start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from escalator.config import Heartbeat
from escalator.config.durations import format_duration

ALERTNAME = "HeartbeatMissed"


def deadline(
    heartbeat: Heartbeat, last_beat: datetime | None, first_seen: datetime, started_at: datetime
) -> datetime:
    """When silence becomes a missed heartbeat.

    The clock starts at the last beat (or, before any beat, when the heartbeat was first
    configured). Never before `startup_grace` after this daemon started: beats sent while
    it was down were lost, not missed, and the source needs one interval to beat again.
    """
    base = last_beat or first_seen
    return max(base + heartbeat.interval + heartbeat.grace, started_at + heartbeat.first_wait)


def is_overdue(
    heartbeat: Heartbeat,
    last_beat: datetime | None,
    first_seen: datetime,
    started_at: datetime,
    now: datetime,
) -> bool:
    return deadline(heartbeat, last_beat, first_seen, started_at) <= now


def beats_in(labels: dict[str, str], heartbeats: Sequence[Heartbeat]) -> list[str]:
    """Names of the Alertmanager-fed heartbeats an alert with `labels` beats."""
    return [
        h.name for h in heartbeats if h.alertmanager is not None and h.alertmanager.matches(labels)
    ]


def fingerprint(name: str) -> str:
    """The missed-heartbeat alert's identity: stable per heartbeat, fits the 64-char column,
    and cannot collide with Alertmanager's 16-hex-digit fingerprints."""
    return "heartbeat:" + hashlib.sha256(name.encode()).hexdigest()[:40]


def alert_labels(heartbeat: Heartbeat) -> dict[str, str]:
    # The configured labels first: alertname, heartbeat and severity are not theirs to change.
    return {
        **heartbeat.labels,
        "alertname": ALERTNAME,
        "heartbeat": heartbeat.name,
        "severity": heartbeat.severity,
    }


def alert_annotations(heartbeat: Heartbeat, last_beat: datetime | None) -> dict[str, str]:
    since = f"since {last_beat.isoformat()}" if last_beat else "ever since it was configured"
    summary = heartbeat.summary or f"heartbeat {heartbeat.name} went silent"
    fed = []
    if heartbeat.alertmanager is not None:
        wanted = {**heartbeat.alertmanager.match, **heartbeat.alertmanager.match_re}
        fed.append("Alertmanager alert " + ", ".join(f"{k}={v}" for k, v in wanted.items()))
    if heartbeat.token is not None:
        fed.append(f"POST /heartbeats/{heartbeat.name}")
    return {
        "summary": summary,
        "description": (
            f"No beat from {heartbeat.name} ({' or '.join(fed)}) {since}; expected every "
            f"{format_duration(heartbeat.interval)} "
            f"(grace {format_duration(heartbeat.grace)}). The monitoring pipeline or the job "
            "behind it may be down: alerts may not be reaching escalator."
        ),
    }
