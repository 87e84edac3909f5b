"""What escalator shows in Slack, as pure functions: Block Kit messages, the status-update
modal, channel names and topics. Nothing here talks to Slack or the store.

A message is the text it was posted with (title and body, fixed) plus a live part drawn
from the alerts it is about: one status line and one row of buttons per alert. Updating a
message in place re-renders the live part from the alerts as they are now, so a channel
shows the current state rather than a scroll of stale posts; a resolved alert loses its
buttons.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

# Interactive elements: `action_id` says what, `value` carries the alert id.
ACK = "escalator_ack"
ESCALATE = "escalator_escalate"
RESOLVE = "escalator_resolve"
SNOOZE = "escalator_snooze"
UPDATE = "escalator_update"
ACTIONS = (ACK, ESCALATE, RESOLVE, SNOOZE, UPDATE)
UPDATE_VIEW = "escalator_status_update"  # the modal's callback_id
UPDATE_STATUSES = ("IN PROGRESS", "MONITORING", "RESOLVED")
# Marks escalator's own posts (message metadata), so a retried post finds the first one.
EVENT_TYPE = "escalator_post"

_SECTION_LIMIT = 3000  # characters in a section's text
_TEXT_LIMIT = 3900  # the fallback `text` (notifications, screen readers)
_CARDS = 10  # alerts listed with buttons in one message (Slack allows 50 blocks)
_NAME_LIMIT = 80
_TOPIC_LIMIT = 250
_ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


class AlertLike(Protocol):
    id: int
    alertname: str
    severity: str | None
    status: str
    level: int
    acked_by: str | None
    ack_via: str | None
    acked_at: datetime | None
    ack_expires_at: datetime | None
    resolved_by: str | None
    resolved_via: str | None
    resolved_at: datetime | None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def escape(text: str) -> str:
    """Slack's three control characters in mrkdwn (so `<!channel>` in a label pings no one)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hm(value: datetime | None) -> str:
    return "" if value is None else f" at {value:%H:%M} UTC"


def status_line(alert: AlertLike) -> str:
    """`:red_circle: #12 HighErrorRate: TRIGGERED (level 1)` and the like."""
    head = f"#{alert.id} {escape(alert.alertname)}"
    if alert.status == "resolved":
        who = f" by {escape(alert.resolved_by)}" if alert.resolved_by else ""
        via = f" via {alert.resolved_via}" if alert.resolved_via else ""
        return f":white_check_mark: {head}: *RESOLVED*{who}{via}{_hm(alert.resolved_at)}"
    if alert.status == "acknowledged":
        who = f" by {escape(alert.acked_by)}" if alert.acked_by else ""
        via = f" via {alert.ack_via}" if alert.ack_via else ""
        until = f", snoozed until {alert.ack_expires_at:%H:%M} UTC" if alert.ack_expires_at else ""
        return f":eyes: {head}: *ACKNOWLEDGED*{who}{via}{_hm(alert.acked_at)}{until}"
    level = f" (escalation level {alert.level})" if alert.level >= 0 else ""
    return f":red_circle: {head}: *TRIGGERED*{level}, not acknowledged"


def _button(text: str, action: str, alert_id: int, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action,
        "value": str(alert_id),
    }
    if style:
        button["style"] = style
    return button


def buttons(alert: AlertLike, with_update: bool = True) -> dict[str, Any] | None:
    """The actions row for one alert; None once it is resolved (nothing left to do).
    `with_update`: the alert has an incident, so "Post status update" means something."""
    if alert.status == "resolved":
        return None
    row = []
    if alert.status == "triggered":
        row.append(_button("Acknowledge", ACK, alert.id, "primary"))
    row.append(_button("Escalate now", ESCALATE, alert.id))
    resolve = _button("Resolve", RESOLVE, alert.id, "danger")
    resolve["confirm"] = {
        "title": {"type": "plain_text", "text": f"Resolve #{alert.id}?"},
        "text": {"type": "plain_text", "text": "Stops all paging for this alert."},
        "confirm": {"type": "plain_text", "text": "Resolve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    row.append(resolve)
    row.append(_button("Snooze 30m", SNOOZE, alert.id))
    if with_update:
        row.append(_button("Post status update", UPDATE, alert.id))
    return {"type": "actions", "block_id": f"alert-{alert.id}", "elements": row}


def message_blocks(
    text: str, alerts: Sequence[AlertLike], incidents: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The message: its fixed text, then each alert's live status and buttons.
    `incidents`: the severities that open incidents (None: offer status updates for all)."""
    title, _, body = text.partition("\n")
    worst = next((a.severity for a in alerts if a.severity), None)
    icon = _ICONS.get(worst or "", ":bell:")
    shown = f"{icon} *{escape(title)}*"
    if body.strip():
        shown += "\n" + escape(body.strip())
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(shown, _SECTION_LIMIT)}}
    ]
    for alert in list(alerts)[:_CARDS]:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": status_line(alert)}]}
        )
        row = buttons(alert, incidents is None or (alert.severity or "") in incidents)
        if row is not None:
            blocks.append(row)
    if len(alerts) > _CARDS:
        more = f"... and {len(alerts) - _CARDS} more: `/escalator list`"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return blocks


def fallback_text(text: str, alerts: Sequence[AlertLike]) -> str:
    """The plain `text` Slack shows in notifications and where blocks cannot render."""
    states = "; ".join(f"#{a.id} {a.status}" for a in alerts)
    text = escape(text)  # the fallback is mrkdwn too: `<!channel>` in it would ping
    return _cut(f"{text}\n{states}" if states else text, _TEXT_LIMIT)


def metadata(key: str, alert_id: int | None) -> dict[str, Any]:
    """Message metadata naming the outbox work that posted it (found again on a retry)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key, "alert_id": alert_id or 0}}


def channel_name(name: str) -> str:
    """A Slack-valid channel name: lowercase letters, digits, `-` and `_`, at most 80
    characters; the tail (`-<id>`, what makes it unique) is kept when it must be cut."""
    clean = re.sub(r"[^a-z0-9_-]+", "-", name.lower().lstrip("#")).strip("-") or "incident"
    if len(clean) > _NAME_LIMIT:
        head, sep, tail = clean.rpartition("-")
        clean = head[: _NAME_LIMIT - len(tail) - 1] + sep + tail if sep else clean[:_NAME_LIMIT]
    return clean


def topic(severity: str | None, alertname: str, summary: str, runbook_url: str | None) -> str:
    """`CRITICAL CredlinkServiceDown: summary | Runbook: URL`, within Slack's 250 characters
    (the runbook link is never the part that is cut)."""
    link = f" | Runbook: {runbook_url}" if runbook_url else ""
    head = f"{(severity or 'none').upper()} {alertname}"
    if summary:
        head += f": {summary}"
    return _cut(head, max(_TOPIC_LIMIT - len(link), 20)) + link


def update_modal(alert_id: int, alertname: str) -> dict[str, Any]:
    """The "Post status update" modal: status, impact / what is being done, next update."""
    options = [
        {"text": {"type": "plain_text", "text": s.title()}, "value": s} for s in UPDATE_STATUSES
    ]
    return {
        "type": "modal",
        "callback_id": UPDATE_VIEW,
        "private_metadata": str(alert_id),
        "title": {"type": "plain_text", "text": "Post status update"},
        "submit": {"type": "plain_text", "text": "Post"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Incident *#{alert_id}* {escape(alertname)}"},
            },
            {
                "type": "input",
                "block_id": "status",
                "label": {"type": "plain_text", "text": "Status"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": options,
                    "initial_option": options[0],
                },
            },
            {
                "type": "input",
                "block_id": "impact",
                "label": {"type": "plain_text", "text": "Impact and what is being done"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 2000,
                },
            },
            {
                "type": "input",
                "block_id": "next_update",
                "optional": True,
                "label": {"type": "plain_text", "text": "Next update / ETA"},
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 200},
            },
        ],
    }


def modal_values(view: dict[str, Any]) -> tuple[str, str, str | None]:
    """(status, message, eta) from a submitted update modal; ValueError names what is wrong."""
    values = (view.get("state") or {}).get("values") or {}

    def field(block: str) -> Any:
        return (values.get(block) or {}).get("value") or {}

    selected = field("status").get("selected_option") or {}
    status = str(selected.get("value") or "IN PROGRESS").upper()
    if status not in UPDATE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(UPDATE_STATUSES)}")
    message = str(field("impact").get("value") or "").strip()
    if not message:
        raise ValueError("say what the impact is and what is being done")
    eta = str(field("next_update").get("value") or "").strip() or None
    return status, message, eta
