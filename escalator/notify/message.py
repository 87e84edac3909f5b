"""Rendering what a page says from the alert rows, per delivery method.

A message is about one alert or, when pages to one person were bundled, several; the
bundle lists them all (up to a limit per method) and tells how to acknowledge them at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from escalator.config import Runbook
from escalator.incidents.runbooks import find, page_lines
from escalator.notify.channels.base import Delivery, Message
from escalator.store.tables import AlertRow

_HIDDEN_LABELS = {"alertname", "severity"}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# How many alerts a bundle lists line by line; SMS and voice must stay short.
_LISTED = {"sms": 8, "voice": 5, "console": 20}
_LISTED_DEFAULT = 200


def ack_hint(alert_id: int | None, method: str) -> str:
    if alert_id is None:
        return "test page: nothing to acknowledge"
    if method == "sms":
        return f"Reply ACK {alert_id} to acknowledge, RESOLVE {alert_id} to resolve"
    if method == "voice":
        return "Press 1 to acknowledge, 9 to escalate now"
    return f"acknowledge: escalator ack {alert_id}"


def bundle_ack_hint(alert_ids: Sequence[int], method: str) -> str:
    if method == "sms":
        return "Reply ACK ALL to acknowledge all, ACK <id> for one, RESOLVE <id> to resolve"
    if method == "voice":
        return "Press 1 to acknowledge them all, 9 to escalate now"
    return f"acknowledge: escalator ack {' '.join(str(i) for i in alert_ids)}"


def _summary(alert: AlertRow) -> str:
    return alert.annotations.get("summary") or alert.annotations.get("description") or ""


def one_line(alert: AlertRow) -> str:
    """`[CRITICAL] #42 HighErrorRate: summary` (with the state when no longer triggered)."""
    severity = (alert.severity or "none").upper()
    state = "" if alert.status == "triggered" else f" [{alert.status.upper()}]"
    line = f"[{severity}] #{alert.id} {alert.alertname}{state}"
    summary = _summary(alert)
    return f"{line}: {summary}" if summary else line


def prerendered(alert: AlertRow | None, delivery: Delivery, text: str) -> Message:
    """A notice rendered when it was queued (incident notices, escalator.templates): the
    text is final; split it into the title/body shape each channel expects."""
    payload = delivery.payload
    alert_id = alert.id if alert is not None else None
    hint = str(payload.get("ack_hint") or ack_hint(alert_id, delivery.method))
    subject = payload.get("subject")
    if delivery.method in ("sms", "voice", "console"):
        title, body = text, text  # these show the title alone: it must be the whole text
    elif delivery.method == "email" and subject:
        title, body = str(subject), text
    else:
        title, _, rest = text.partition("\n")
        body = rest.strip()
    severity = alert.severity if alert is not None else None
    return Message(alert_id, title, body, hint, severity, (alert_id,) if alert_id else ())


def render(
    alert: AlertRow | None, delivery: Delivery, runbooks: Mapping[str, Runbook] | None = None
) -> Message:
    text = delivery.payload.get("text")
    if isinstance(text, str) and text:
        return prerendered(alert, delivery, text)
    if alert is None:
        return Message(
            None,
            "escalator test page",
            "This is a test page from escalator.",
            ack_hint(None, delivery.method),
        )
    summary = _summary(alert)
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
    lines.extend(
        page_lines(runbooks or {}, alert.alertname, alert.annotations, delivery.method)
    )
    if alert.generator_url:
        lines.append(f"Source: {alert.generator_url}")
    lines.append(f"Opened: {alert.opened_at:%Y-%m-%d %H:%M:%S} UTC, policy {alert.policy_name}")
    return Message(
        alert.id,
        one_line(alert),
        "\n".join(lines),
        ack_hint(alert.id, delivery.method),
        alert.severity,
        (alert.id,),
    )


def render_bundle(
    alerts: Sequence[AlertRow],
    delivery: Delivery,
    runbooks: Mapping[str, Runbook] | None = None,
) -> Message:
    """One message for several alerts to one person, most severe first."""
    if len(alerts) <= 1:
        return render(alerts[0] if alerts else None, delivery, runbooks)
    ordered = sorted(alerts, key=lambda a: (_SEVERITY_ORDER.get(a.severity or "", 9), a.id))
    worst = ordered[0].severity
    limit = _LISTED.get(delivery.method, _LISTED_DEFAULT)
    names = sorted({a.alertname for a in ordered})
    title = f"[{(worst or 'none').upper()}] {len(alerts)} alerts: {', '.join(names[:3])}"
    if len(names) > 3:
        title += f" and {len(names) - 3} more"
    lines = [one_line(a) for a in ordered[:limit]]
    if len(ordered) > limit:
        lines.append(f"... and {len(ordered) - limit} more")
    if delivery.method not in _LISTED:
        # Email, chat and webhooks have room for the runbook links too.
        for alert in ordered:
            known = find(runbooks or {}, alert.alertname)
            runbook = alert.annotations.get("runbook_url") or (known.url if known else None)
            if runbook:
                lines.append(f"Runbook #{alert.id}: {runbook}")
    ids = tuple(a.id for a in ordered)
    return Message(
        None, title, "\n".join(lines), bundle_ack_hint(ids, delivery.method), worst, ids
    )
