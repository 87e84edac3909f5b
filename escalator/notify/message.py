"""Rendering what a page says from the alert row, per delivery method."""

from __future__ import annotations

from escalator.notify.base import Delivery, Message
from escalator.store.tables import AlertRow

_HIDDEN_LABELS = {"alertname", "severity"}


def ack_hint(alert_id: int | None, method: str) -> str:
    if alert_id is None:
        return "test page: nothing to acknowledge"
    if method == "sms":
        return f"Reply ACK {alert_id} to acknowledge, RESOLVE {alert_id} to resolve"
    if method == "voice":
        return "Press 1 to acknowledge, 9 to escalate now"
    return f"acknowledge: escalator ack {alert_id}"


def render(alert: AlertRow | None, delivery: Delivery) -> Message:
    if alert is None:
        return Message(
            None,
            "escalator test page",
            "This is a test page from escalator.",
            ack_hint(None, delivery.method),
        )
    severity = (alert.severity or "none").upper()
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    state = "" if alert.status == "triggered" else f" [{alert.status.upper()}]"
    title = f"[{severity}] #{alert.id} {alert.alertname}{state}"
    if summary:
        title += f": {summary}"
    labels = ", ".join(
        f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in _HIDDEN_LABELS
    )
    lines = [summary] if summary else []
    description = alert.annotations.get("description")
    if description and description != summary:
        lines.append(description)
    if labels:
        lines.append(f"Labels: {labels}")
    runbook = alert.annotations.get("runbook_url")
    if runbook:
        lines.append(f"Runbook: {runbook}")
    if alert.generator_url:
        lines.append(f"Source: {alert.generator_url}")
    lines.append(f"Opened: {alert.opened_at:%Y-%m-%d %H:%M:%S} UTC, policy {alert.policy_name}")
    return Message(
        alert.id, title, "\n".join(lines), ack_hint(alert.id, delivery.method), alert.severity
    )
