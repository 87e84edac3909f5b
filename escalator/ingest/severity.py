"""Severity identity: an alert whose severity rises keeps its identity (aliased to the
open row) instead of opening a second page storm, and a lower tier of an open alert (the
critical tier fired first) joins it instead of opening a second alert.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from escalator.config import Config
from escalator.escalation import machine
from escalator.escalation.apply import state_of
from escalator.escalation.machine import Tick
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.incidents import protocol as incidents
from escalator.incidents.store import maybe_open_incident, record_decision
from escalator.store.tables import AlertAliasRow, AlertRow, AlertSlaRow
from escalator.store.timeline import note


def aliased_row(
    session: Session, row: AlertRow | None, fingerprint: str, starts_at: datetime, now: datetime
) -> tuple[AlertRow | None, bool]:
    """For a `resolved` entry: (the alert it belongs to, hold it open?).

    An alert that absorbed a severity rise has two occurrences; it resolves when the last
    of them clears, so "critical cleared, still warning" keeps it open (and noted).
    """
    alias = session.get(AlertAliasRow, (fingerprint, starts_at))
    if alias is None:
        return row, False
    if alias.resolved_at is None:
        alias.resolved_at = now
    target = row if row is not None else session.get(AlertRow, alias.alert_id)
    if target is None or target.status == "resolved":
        return target, False
    pending = list(
        session.scalars(
            select(AlertAliasRow).where(
                AlertAliasRow.alert_id == target.id, AlertAliasRow.resolved_at.is_(None)
            )
        )
    )
    if pending:
        still = ", ".join(f"{a.severity or '?'} ({a.fingerprint})" for a in pending)
        note(
            session,
            target.id,
            now,
            "occurrence_cleared",
            f"{alias.severity or '?'} occurrence {fingerprint} cleared; still firing: {still}",
            "alertmanager",
            "alertmanager",
        )
        return target, True
    return target, False


def absorb_severity_rise(
    session: Session,
    fingerprint: str,
    starts_at: datetime,
    labels: dict[str, str],
    annotations: dict[str, str],
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> bool:
    """True when a new firing occurrence belongs to an existing alert (nothing to open).

    Either it is a known alias (a repeat of an absorbed twin), or it is the same problem as
    an open alert (same alertname and every label but `severity`) at another tier:
    - higher severity: that alert moves to the new policy *without restarting its clock*
      (`clock_base` stays), levels already due under the new policy fire at once, and the
      rise is on its timeline;
    - lower severity (a critical tier whose `for:` is shorter fires first, its warning tier
      later): the occurrence joins the alert, which keeps its severity and policy; nobody is
      paged for it (see join_lower_tier).
    Either way the alert resolves only when every occurrence has cleared.
    """
    if session.get(AlertAliasRow, (fingerprint, starts_at)) is not None:
        return True
    severity = labels.get("severity")
    identity = incidents.labels_without_severity(labels)
    candidates = session.scalars(
        select(AlertRow)
        .where(
            AlertRow.identity == incidents.alert_identity(labels),
            AlertRow.status != "resolved",
        )
        .order_by(AlertRow.id)
        .with_for_update()
    )
    same = [r for r in candidates if incidents.labels_without_severity(r.labels) == identity]
    row = next((r for r in same if incidents.is_severity_rise(r.severity, severity)), None)
    if row is None:
        higher = next((r for r in same if incidents.is_severity_rise(severity, r.severity)), None)
        if higher is None:
            return False
        join_lower_tier(session, higher, fingerprint, starts_at, severity, now)
        return True
    name = config.route(labels)
    if name is None:
        return False
    policy = config.policies[name]
    pid = policies.ensure(session, name, policy, now)
    _add_alias(session, row, fingerprint, starts_at, severity)
    old_severity, old_policy = row.severity, row.policy_name
    row.labels, row.annotations = labels, annotations
    row.severity, row.policy_name, row.policy_id = severity, name, pid
    note(
        session,
        row.id,
        now,
        "severity_raised",
        f"user impact increasing: severity {old_severity} -> {severity} (occurrence "
        f"{fingerprint}); policy {old_policy} -> {name}, clock kept from "
        f"{row.clock_base:%Y-%m-%d %H:%M:%S} UTC",
        "alertmanager",
        "alertmanager",
    )
    # Walk the new policy from its first step on the old clock: every level already due
    # under it fires now (each with its condition checked), the rest at their usual times.
    state = replace(state_of(row), next_step=0, level=-1, repeats_done=0)
    decision = machine.step(state, Tick(), now, policy, paging)
    record_decision(session, row, decision, paging, now)
    sla = session.get(AlertSlaRow, row.id)
    if policy.response_time is not None:
        due_at = now + policy.response_time
        if sla is None:
            session.add(
                AlertSlaRow(
                    alert_id=row.id,
                    severity=severity,
                    response_seconds=int(policy.response_time.total_seconds()),
                    due_at=due_at,
                )
            )
        elif sla.responded_at is None and sla.breached_at is None:
            sla.severity = severity
            sla.response_seconds = int(policy.response_time.total_seconds())
            sla.due_at = min(sla.due_at, due_at)
    maybe_open_incident(session, row, config, now)
    return True


def _add_alias(
    session: Session, row: AlertRow, fingerprint: str, starts_at: datetime, severity: str | None
) -> None:
    """Record that the alert now tracks a second occurrence (and its own, first)."""
    if session.get(AlertAliasRow, (row.fingerprint, row.starts_at)) is None:
        session.add(
            AlertAliasRow(
                fingerprint=row.fingerprint,
                starts_at=row.starts_at,
                alert_id=row.id,
                severity=row.severity,
            )
        )
    session.add(
        AlertAliasRow(
            fingerprint=fingerprint, starts_at=starts_at, alert_id=row.id, severity=severity
        )
    )


def join_lower_tier(
    session: Session,
    row: AlertRow,
    fingerprint: str,
    starts_at: datetime,
    severity: str | None,
    now: datetime,
) -> None:
    """A lower tier of an open alert fired (critical first, then its warning twin): the
    same problem, already paged at the higher severity. It joins the alert as an occurrence:
    severity, policy, clock and labels stay; no page, no second incident. The alert now
    resolves when both tiers have cleared (aliased_row), as after a rise."""
    _add_alias(session, row, fingerprint, starts_at, severity)
    note(
        session,
        row.id,
        now,
        "occurrence_joined",
        f"{severity or '?'} occurrence {fingerprint} of the same problem joined this "
        f"{row.severity or '?'} alert; severity and policy kept",
        "alertmanager",
        "alertmanager",
    )
