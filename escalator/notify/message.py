"""What a page says, per delivery method: the alert rows as template context, rendered with
the page templates (escalator/notify/templates: page*, bundle*, ack_hint*, test_page).

A message is about one alert or, when pages to one person were bundled, several; the
bundle lists them all (up to a limit per method) and tells how to acknowledge them at once.
Every page carries its runbook link (the alert's `runbook_url` annotation, else the
configured runbook); a page for an alert someone already acknowledged says who did and
why this person is paged, and asks them to resolve rather than to acknowledge again.

This module builds context and splits the rendered text into the title/body/hint shape
channels take; the wording is all in the templates, overridable per method from config
(`channels.templates.<method>.<kind>`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from escalator.config import Config, Runbook
from escalator.config.durations import format_duration
from escalator.incidents import runbooks
from escalator.incidents.templates import Templates, fit_sms, to_gsm7
from escalator.notify.channels.base import Delivery, Message
from escalator.notify.templates import page_templates
from escalator.store.tables import AlertRow

_HIDDEN_LABELS = {"alertname", "severity"}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# How many alerts a bundle lists line by line; SMS and voice must stay short.
_LISTED = {"sms": 8, "voice": 5, "console": 20}
_LISTED_DEFAULT = 200
# Methods whose message is the whole text in its title (they show nothing else).
_WHOLE = frozenset({"sms", "voice"})
# The console prints one line per page: the template's lines joined.
_CONSOLE_JOIN = " | "


def _time(value: datetime | None, with_date: bool = False) -> str | None:
    if value is None:
        return None
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if with_date else f"{value:%H:%M} UTC"


class Pages:
    """Renders escalation pages; built once per daemon from its configuration (templates
    and runbooks are handed in, nothing process-wide), used by the sender and the voice
    webhook."""

    def __init__(
        self,
        templates: Templates | None = None,
        runbooks: Mapping[str, Runbook] | None = None,
    ) -> None:
        self.templates = templates or page_templates()
        self.runbooks = dict(runbooks or {})

    @classmethod
    def from_config(cls, config: Config | None) -> Pages:
        if config is None:
            return cls()
        return cls(page_templates(config.channels.templates), config.runbooks)

    # context ------------------------------------------------------------------------------

    def runbook(self, alert: AlertRow) -> dict[str, Any] | None:
        """The alert's `runbook_url` annotation wins; the configured runbook adds the
        immediate actions (and is the link when the alert carries none)."""
        known = runbooks.find(self.runbooks, alert.alertname)
        url = alert.annotations.get("runbook_url") or (known.url if known else None)
        if not url:
            return None
        return {
            "url": url,
            "title": known.title if known else None,
            "immediate_actions": list(known.immediate_actions) if known else [],
        }

    def alert_context(self, alert: AlertRow) -> dict[str, Any]:
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
        return {
            "id": alert.id,
            "alertname": alert.alertname,
            "severity": (alert.severity or "none").upper(),
            "status": alert.status,
            "summary": summary,
            "description": alert.annotations.get("description") or "",
            "labels": {k: v for k, v in alert.labels.items() if k not in _HIDDEN_LABELS},
            "instance": alert.labels.get("instance"),
            "generator_url": alert.generator_url,
            "opened": _time(alert.opened_at, with_date=True),
            "policy": alert.policy_name,
            "acked_by": alert.acked_by,
            "acked_at": _time(alert.acked_at),
            "ack_via": alert.ack_via,
            "ack_until": _time(alert.ack_expires_at),
            "runbook": self.runbook(alert),
        }

    @staticmethod
    def page_context(delivery: Delivery) -> dict[str, Any]:
        """Why this page: its level, reason and the step that raised it (escalation/apply.py
        puts the step's `after` and condition in the outbox payload)."""
        payload = delivery.payload
        after = payload.get("step_after")
        return {
            "level": delivery.level,
            "reason": delivery.reason,
            "repeat": payload.get("repeat") or 0,
            "condition": payload.get("step_condition"),
            "after": None if after is None else format_duration(timedelta(milliseconds=int(after))),
            "detail": payload.get("detail") or "",
            "recipient": delivery.recipient,
            "via": payload.get("via") or "",
            "urgency": delivery.urgency,
        }

    @staticmethod
    def hint_context(alerts: Sequence[dict[str, Any]], test: bool = False) -> dict[str, Any]:
        return {
            "test": test,
            "count": len(alerts),
            "triggered": [a["id"] for a in alerts if a["status"] == "triggered"],
            "acknowledged": [a["id"] for a in alerts if a["status"] == "acknowledged"],
            "ids": [a["id"] for a in alerts],
        }

    # rendering ----------------------------------------------------------------------------

    def _message(
        self,
        kind: str,
        delivery: Delivery,
        context: dict[str, Any],
        hint_ctx: dict[str, Any],
        alert_id: int | None,
        severity: str | None,
        ids: tuple[int, ...],
        now: datetime | None,
    ) -> Message:
        method = delivery.method
        context = {**context, "now": _time(now, True)}
        hint = self.templates.render("ack_hint", method, {**context, **hint_ctx})
        text = self.templates.render(kind, method, context)
        if method == "sms":
            # GSM-7 so the runbook link fits; two segments with the hint, which is never cut.
            hint = to_gsm7(hint)
            text = fit_sms(to_gsm7(text), hint)
        if method in _WHOLE:
            title, body = text, text
        elif method == "console":
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            title, body = _CONSOLE_JOIN.join(lines), "\n".join(lines[1:])
        else:
            title, _, rest = text.partition("\n")
            body = rest.strip()
        return Message(alert_id, title, body, hint, severity, ids, now)

    def render(
        self, alert: AlertRow | None, delivery: Delivery, now: datetime | None = None
    ) -> Message:
        text = delivery.payload.get("text")
        if isinstance(text, str) and text:
            return prerendered(alert, delivery, text, now)
        if alert is None:
            return self._message(
                "test_page", delivery, {}, self.hint_context([], test=True), None, None, (), now
            )
        ctx = self.alert_context(alert)
        context = {"alert": ctx, "runbook": ctx["runbook"], "page": self.page_context(delivery)}
        hint_ctx = self.hint_context([ctx])
        return self._message(
            "page", delivery, context, hint_ctx, alert.id, alert.severity, (alert.id,), now
        )

    def render_bundle(
        self, alerts: Sequence[AlertRow], delivery: Delivery, now: datetime | None = None
    ) -> Message:
        """One message for several alerts to one person, most severe first."""
        if len(alerts) <= 1:
            return self.render(alerts[0] if alerts else None, delivery, now)
        ordered = sorted(alerts, key=lambda a: (_SEVERITY_ORDER.get(a.severity or "", 9), a.id))
        context = self.bundle_context(ordered, delivery.method)
        context["page"] = self.page_context(delivery)
        ids = tuple(a.id for a in ordered)
        hint_ctx = self.hint_context(context["alerts"])
        return self._message(
            "bundle", delivery, context, hint_ctx, None, ordered[0].severity, ids, now
        )

    def bundle_context(self, ordered: Sequence[AlertRow], method: str) -> dict[str, Any]:
        limit = _LISTED.get(method, _LISTED_DEFAULT)
        alerts = [self.alert_context(a) for a in ordered]
        books: dict[str, list[int]] = {}
        for a in alerts:
            if a["runbook"]:
                books.setdefault(a["runbook"]["url"], []).append(a["id"])
        return {
            "alerts": alerts,
            "listed": alerts[:limit],
            "more": max(len(alerts) - limit, 0),
            "count": len(alerts),
            "worst": alerts[0]["severity"] if alerts else "NONE",
            "names": sorted({a["alertname"] for a in alerts}),
            "runbooks": [{"url": url, "ids": ids} for url, ids in books.items()],
        }

    def spoken(self, alerts: Sequence[AlertRow]) -> str:
        """What a call says about its alerts (the voice webhook's TwiML)."""
        if not alerts:
            return "There are no open alerts on this call."
        return self.templates.render("bundle", "voice", self.bundle_context(alerts, "voice"))


def prerendered(
    alert: AlertRow | None, delivery: Delivery, text: str, now: datetime | None = None
) -> Message:
    """A notice rendered when it was queued (incident notices and shift notices): the
    text is final; split it into the title/body shape each channel expects."""
    payload = delivery.payload
    alert_id = alert.id if alert is not None else None
    hint = str(payload.get("ack_hint") or "")
    subject = payload.get("subject")
    if hint and hint in text:
        hint = ""  # the notice already says it (multiple_critical's last line): say it once
    if delivery.method in ("sms", "voice", "console"):
        title, body = text, text  # these show the title alone: it must be the whole text
    elif delivery.method == "email" and subject:
        title, body = str(subject), text
    else:
        title, _, rest = text.partition("\n")
        body = rest.strip()
    severity = alert.severity if alert is not None else None
    return Message(alert_id, title, body, hint, severity, (alert_id,) if alert_id else (), now)
