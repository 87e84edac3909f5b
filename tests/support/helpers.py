"""Shared test helpers: the shipped config, a recording channel, Alertmanager bodies.

Kept free of fixtures so test modules import plain functions and the intent stays visible
at the call site.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from escalator.config import Config, load_config
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config" / "escalator.yaml"

# A Monday afternoon inside the shipped weekly rotation (alice holds 2026-03-02..09).
T0 = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


def shipped_config(heartbeats: bool = False) -> Config:
    """The shipped config; without its heartbeats unless asked for.

    The shipped Watchdog heartbeat pages when Alertmanager falls silent for 5 minutes, and
    tests that walk hours of fixed time have no Alertmanager feeding it: they would all
    see a HeartbeatMissed alert. The heartbeat has its own tests (test_sources_*.py).
    """
    config = load_config(SHIPPED_CONFIG)
    return config if heartbeats else without_heartbeats(config)


def without_heartbeats(config: Config) -> Config:
    return config.model_copy(update={"heartbeats": []})


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


# Alertmanager 0.25 webhook bodies ---------------------------------------------------------

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


DEFAULT_FINGERPRINT = "d9f5ab31c1a7e2b4"


def am_alert(
    fingerprint: str = DEFAULT_FINGERPRINT,
    status: str = "firing",
    starts_at: str = "2026-03-02T18:59:47.123456789Z",
    ends_at: str = GO_ZERO_TIME,
    severity: str = "critical",
    alertname: str = "CredLinkAPIDown",
    instance: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 renders it (nanosecond startsAt, Go zero endsAt).

    Alertmanager's fingerprint is a hash of the labels, so another fingerprint comes with
    other labels: the instance is derived from it unless given.
    """
    if instance is None:
        instance = "api-1" if fingerprint == DEFAULT_FINGERPRINT else f"api-{fingerprint}"
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "instance": f"{instance}.credlink.internal:8080",
            "job": "credlink-api",
            "severity": severity,
            **labels,
        },
        "annotations": {
            "summary": "CredLink API is down",
            "description": "api-1 has failed its health check for 1 minute.",
            "runbook_url": "https://runbooks.credlink.example/api-down",
        },
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": "http://prometheus.credlink.internal:9090/graph?g0.expr=up%7Bjob%3D%22credlink-api%22%7D+%3D%3D+0&g0.tab=1",
        "fingerprint": fingerprint,
    }


def am_body(*alerts: dict[str, Any], receiver: str = "escalator") -> dict[str, Any]:
    """A whole version-4 webhook body, as Alertmanager 0.25 posts it."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    return {
        "receiver": receiver,
        "status": "firing" if firing else "resolved",
        "alerts": list(alerts),
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.credlink.internal:9093",
        "version": "4",
        "groupKey": '{}/{severity=~"critical|warning"}:{alertname="CredLinkAPIDown"}',
        "truncatedAlerts": 0,
    }


# Store inspection ------------------------------------------------------------------------


def alert_rows(factory: Any) -> list[AlertRow]:
    with transaction(factory) as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def outbox_rows(
    factory: Any, alert_id: int | None = None, pages_only: bool = True
) -> list[OutboxRow]:
    """Outbox rows; by default only escalation pages (incident/shift notices have no level)."""
    with transaction(factory) as session:
        query = select(OutboxRow).order_by(OutboxRow.id)
        if alert_id is not None:
            query = query.where(OutboxRow.alert_id == alert_id)
        if pages_only:
            query = query.where(OutboxRow.level.is_not(None))
        return list(session.scalars(query))


# What the escalation core itself writes to an alert's timeline.
ESCALATION_KINDS = frozenset(
    {
        "opened",
        "paged",
        "sent",
        "send_retry",
        "send_failed",
        "unreachable",
        "acknowledged",
        "snoozed",
        "resolved",
        "step_skipped",
        "nobody_to_page",
        "ack_expired",
        "escalated_manually",
        "repeat_skipped",
        "repeats_missed",
    }
)
_SEND_KINDS = frozenset({"sent", "send_retry", "send_failed"})


def timeline(factory: Any, alert_id: int, escalation_only: bool = True) -> list[TimelineRow]:
    """An alert's timeline; by default only the escalation core's entries (not incidents')."""
    with transaction(factory) as session:
        rows = list(
            session.scalars(
                select(TimelineRow).where(TimelineRow.alert_id == alert_id).order_by(TimelineRow.id)
            )
        )
    if not escalation_only:
        return rows
    return [
        r
        for r in rows
        if r.kind in ESCALATION_KINDS and not (r.kind in _SEND_KINDS and r.level is None)
    ]


def count_rows(factory: Any, table: Any) -> int:
    with transaction(factory) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)
