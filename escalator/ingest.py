"""Alertmanager's webhook (version 4) into tracked alerts.

Alertmanager posts the whole group every time, delivers at least once, and in a cluster
each peer may post the same group: so ingest is idempotent per alert occurrence
(fingerprint + startsAt). A repeat changes nothing but labels and annotations, a
`resolved` entry closes just that alert, and a firing after close has a new startsAt and
opens a new alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from escalator import machine
from escalator.alerts import Paging, PolicyCache, apply_decision, note, state_of
from escalator.config import Config
from escalator.incident_store import absorb_severity_rise, alert_opened, aliased_row
from escalator.machine import AlertState, Resolve, Tick
from escalator.store.tables import AlertRow


class AMAlert(BaseModel):
    # Unknown fields are allowed: Alertmanager adds fields between versions.
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=64)


class AMWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AMAlert]


@dataclass
class IngestResult:
    opened: list[int] = field(default_factory=list)
    updated: int = 0
    resolved: list[int] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)
    ignored: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "opened": self.opened,
            "updated": self.updated,
            "resolved": self.resolved,
            "unrouted": self.unrouted,
            "ignored": self.ignored,
        }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _insert_ignoring_duplicates(session: Session, values: dict[str, object]) -> int | None:
    """Insert one alert; None when a concurrent post (an HA peer) inserted it first."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(AlertRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["fingerprint", "starts_at"])
        .returning(AlertRow.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def ingest(
    session: Session,
    payload: AMWebhook,
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> IngestResult:
    """Apply one webhook body inside the caller's transaction."""
    result = IngestResult()
    # The same occurrence may appear twice in one body; the last entry wins.
    latest: dict[tuple[str, datetime], AMAlert] = {}
    for alert in payload.alerts:
        latest[(alert.fingerprint, _utc(alert.startsAt))] = alert
    if not latest:
        return result
    existing = {
        (row.fingerprint, row.starts_at): row
        for row in session.scalars(
            select(AlertRow)
            .where(tuple_(AlertRow.fingerprint, AlertRow.starts_at).in_(list(latest)))
            .with_for_update()
        )
    }
    for key, alert in latest.items():
        row = existing.get(key)
        if alert.status == "resolved":
            _resolve(session, row, alert, paging, policies, now, result)
        elif row is not None:
            if row.labels != alert.labels or row.annotations != alert.annotations:
                row.labels, row.annotations = alert.labels, alert.annotations
                row.updated_at = now
            result.updated += 1
        else:
            _open(session, key, alert, config, paging, policies, now, result)
    return result


def _open(
    session: Session,
    key: tuple[str, datetime],
    alert: AMAlert,
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    result: IngestResult,
) -> None:
    # A warning turning critical arrives with a new fingerprint: same alert, moved up.
    if absorb_severity_rise(
        session, *key, alert.labels, alert.annotations, config, paging, policies, now
    ):
        result.updated += 1
        return
    name = config.route(alert.labels)
    if name is None:
        result.unrouted.append(alert.fingerprint)
        return
    pid = policies.ensure(session, name, config.policies[name], now)
    state = AlertState.opened(now)
    values: dict[str, object] = {
        "fingerprint": key[0],
        "starts_at": key[1],
        "ends_at": None,
        "alertname": alert.labels.get("alertname", "(no alertname)")[:200],
        "severity": alert.labels.get("severity"),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generatorURL or None,
        "policy_name": name,
        "policy_id": pid,
        **{k: getattr(state, k) for k in AlertState.__dataclass_fields__},
        "next_action_at": now,
        "updated_at": now,
    }
    alert_id = _insert_ignoring_duplicates(session, values)
    if alert_id is None:
        result.updated += 1
        return
    # Level 0 is decided here, in the same transaction: when Alertmanager gets its 2xx the
    # first page is already in the outbox, and it leaves without waiting for a tick.
    row = session.get(AlertRow, alert_id)
    assert row is not None
    policy = config.policies[name]
    decision = machine.step(state, Tick(), now, policy, paging.reachable)
    note(
        session,
        alert_id,
        now,
        "opened",
        f"opened from Alertmanager (fingerprint {key[0]}, policy {name})",
        "alertmanager",
        "alertmanager",
    )
    apply_decision(session, row, decision, paging, now)
    alert_opened(session, row, config, now)  # response-time SLA; incident if critical
    result.opened.append(alert_id)


def _resolve(
    session: Session,
    row: AlertRow | None,
    alert: AMAlert,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    result: IngestResult,
) -> None:
    row, held = aliased_row(session, row, alert.fingerprint, _utc(alert.startsAt), now)
    if held:  # one occurrence of an alert whose severity rose cleared; the other fires on
        result.updated += 1
        return
    if row is None or row.status == "resolved":
        # Never seen (opened before escalator ran, or unrouted) or already closed.
        result.ignored += 1
        return
    if alert.endsAt is not None and alert.endsAt.year > 1:
        row.ends_at = _utc(alert.endsAt)
    policy = policies.get(session, row.policy_id)
    decision = machine.step(
        state_of(row), Resolve(by="alertmanager", via="alertmanager"), now, policy
    )
    apply_decision(session, row, decision, paging, now)
    result.resolved.append(row.id)
