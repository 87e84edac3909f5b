"""Maintenance windows in the store: the windows people add, the alerts they hold, and
the engine step that lets those alerts escalate when a window ends.

An alert that opens inside a window is inserted with its escalation clock starting at
the window's end (so nothing is due before it: no page, no incident) and one
`alert_suppressions` row. When the window ends (its time runs out, or `escalator
maintenance end`), `release_due` runs in the engine tick before the due alerts are
stepped: a still-firing alert restarts its clock at that moment, gets its incident and
response-time SLA like a new alert, and the same tick pages its level 0. An alert that
resolved meanwhile only gets a note. Everything is rows and a query on `until`, so a
restart or a second replica neither loses nor repeats a release.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from escalator.escalation import machine
from escalator.escalation.apply import state_of
from escalator.maintenance.windows import Window, active_recurring, covering, occurrences
from escalator.read.times import rfc3339
from escalator.store.tables import (
    AlertRow,
    MaintenanceRow,
    OutboxRow,
    SuppressionRow,
    TimelineRow,
)
from escalator.store.timeline import note, timeline_row

if TYPE_CHECKING:
    from escalator.config import Config, LabelMatcher
    from escalator.escalation.policies import PolicyCache


def window_of(row: MaintenanceRow) -> Window:
    return Window(
        key=f"#{row.id}",
        starts_at=row.starts_at,
        ends_at=row.ended_at if row.ended_at is not None else row.ends_at,
        reason=row.reason,
        match=dict(row.match),
        match_re=dict(row.match_re),
        created_by=row.created_by,
        include_open=row.include_open,
    )


def active_windows(session: Session, config: Config, now: datetime) -> list[Window]:
    """Every window running at `now`: added ones (one indexed query) and the config's."""
    rows = session.scalars(
        select(MaintenanceRow).where(
            MaintenanceRow.ends_at > now,
            MaintenanceRow.starts_at <= now,
            MaintenanceRow.ended_at.is_(None),
        )
    )
    return [window_of(r) for r in rows] + active_recurring(config.maintenance, now)


def _held_note(window: Window) -> str:
    return (
        f"held by {window.describe()} until {window.ends_at.isoformat()}: pages no one; "
        "escalates from then if still firing"
    )


def suppress_new(session: Session, window: Window, alert_ids: Sequence[int], now: datetime) -> None:
    """Alerts just opened inside `window` (ingest, same transaction)."""
    session.execute(
        insert(SuppressionRow.__table__),  # type: ignore[arg-type]
        [
            {
                "alert_id": alert_id,
                "window": window.key,
                "reason": window.reason,
                "until": window.ends_at,
                "opened_inside": True,
                "released_at": None,
            }
            for alert_id in alert_ids
        ],
    )
    detail = _held_note(window)
    session.execute(
        insert(TimelineRow.__table__),  # type: ignore[arg-type]
        [timeline_row(a, now, "maintenance", detail, window.created_by) for a in alert_ids],
    )


def _hold(
    session: Session,
    row: AlertRow,
    window: Window,
    policies: PolicyCache,
    opened_inside: bool,
    now: datetime,
) -> None:
    """Restart an alert's escalation clock at the window's end, dropping queued pages."""
    policy = policies.get(session, row.policy_id)
    row.clock_base = window.ends_at
    row.next_step, row.level, row.repeats_done = 0, -1, 0
    row.next_action_at = machine.next_action_at(state_of(row), policy)
    row.updated_at = now
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.alert_id == row.id, OutboxRow.status == "pending")
        .values(status="cancelled", last_error=f"cancelled: maintenance {window.key}")
    )
    found = session.get(SuppressionRow, row.id)
    if found is None:
        session.add(
            SuppressionRow(
                alert_id=row.id,
                window=window.key,
                reason=window.reason,
                until=window.ends_at,
                opened_inside=opened_inside,
                released_at=None,
            )
        )
    else:
        found.window, found.reason, found.until = window.key, window.reason, window.ends_at
        found.released_at = None
    note(session, row.id, now, "maintenance", _held_note(window), window.created_by)


@dataclass(frozen=True)
class Added:
    window: Window
    held: list[int]


def add_window(
    session: Session,
    matcher: LabelMatcher,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    by: str,
    include_open: bool,
    policies: PolicyCache,
    now: datetime,
) -> Added:
    """Add a window. Alerts already escalating keep escalating (maintenance hides what the
    work causes, not what was already broken) unless `include_open`."""
    if ends_at <= starts_at:
        raise ValueError("the window must end after it starts")
    if not (matcher.match or matcher.match_re):
        raise ValueError("give at least one --match or --match-re label")
    row = MaintenanceRow(
        match=dict(matcher.match),
        match_re=dict(matcher.match_re),
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        include_open=include_open,
        created_by=by,
        created_at=now,
        ended_at=None,
        ended_by=None,
    )
    session.add(row)
    session.flush()
    window = window_of(row)
    held: list[int] = []
    if include_open and window.active(now):
        candidates = session.scalars(
            select(AlertRow)
            .where(AlertRow.status.in_(("triggered", "acknowledged")))
            .order_by(AlertRow.id)
            .with_for_update()
        )
        for alert in candidates:
            if window.matches(alert.labels):
                current = session.get(SuppressionRow, alert.id)
                opened_inside = bool(current and current.opened_inside)
                held_longer = (
                    current is not None
                    and current.released_at is None
                    and (current.until >= window.ends_at)
                )
                if held_longer:
                    continue
                _hold(session, alert, window, policies, opened_inside, now)
                held.append(alert.id)
    return Added(window, held)


def end_window(session: Session, window_id: int, by: str, now: datetime) -> MaintenanceRow | None:
    """End a window now; the engine releases its alerts on its next tick."""
    row = session.get(MaintenanceRow, window_id, with_for_update=True)
    if row is None:
        return None
    if row.ended_at is None and row.ends_at > now:
        row.ended_at, row.ended_by = max(now, row.starts_at), by
        session.execute(
            update(SuppressionRow)
            .where(SuppressionRow.window == f"#{row.id}", SuppressionRow.released_at.is_(None))
            .values(until=now)
        )
    return row


def release_due(
    session: Session, config: Config, policies: PolicyCache, now: datetime, limit: int = 500
) -> list[int]:
    """Let alerts whose window ended escalate (the engine, before stepping due alerts).

    Returns the ids now escalating. Rows another replica is releasing are skipped.
    """
    due = list(
        session.scalars(
            select(SuppressionRow)
            .where(SuppressionRow.released_at.is_(None), SuppressionRow.until <= now)
            .order_by(SuppressionRow.until)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not due:
        return []
    # Here, not at the top: `escalator list` reads what maintenance holds, and should not
    # load the incident protocol and its config models to do so.
    from escalator.incidents.store import OpenedAlert, alerts_opened

    windows: list[Window] | None = None
    escalating: list[int] = []
    fresh: list[OpenedAlert] = []
    for held in due:
        alert = session.get(AlertRow, held.alert_id, with_for_update=True)
        assert alert is not None  # the suppression row cascades with its alert
        if alert.status == "resolved":
            held.released_at = now
            note(
                session, alert.id, now, "maintenance_ended",
                f"maintenance {held.window} ended; the alert had resolved during it "
                "and paged no one",
            )  # fmt: skip
            continue
        if windows is None:
            windows = active_windows(session, config, now)
        still = covering(windows, alert.labels, now)
        if still is not None:  # another window goes on holding it
            _hold(session, alert, still, policies, held.opened_inside, now)
            continue
        held.released_at = now
        policy = policies.get(session, alert.policy_id)
        if alert.level < 0:  # nobody escalated it by hand meanwhile: as a new alert from now
            alert.clock_base = now
        alert.next_action_at = machine.next_action_at(state_of(alert), policy)
        alert.updated_at = now
        note(
            session, alert.id, now, "maintenance_ended",
            f"maintenance {held.window} ended while the alert still fires: escalating from now",
        )  # fmt: skip
        escalating.append(alert.id)
        if held.opened_inside:
            fresh.append(OpenedAlert(alert.id, alert.severity, alert.policy_name))
    if fresh:
        alerts_opened(session, fresh, config, now)  # its incident and SLA start now
    return escalating


def held_alerts(session: Session, alert_ids: Sequence[int]) -> dict[int, SuppressionRow]:
    """Which of these alerts a maintenance window holds now (for the list and show views)."""
    rows = session.scalars(
        select(SuppressionRow).where(
            SuppressionRow.alert_id.in_(alert_ids), SuppressionRow.released_at.is_(None)
        )
    )
    return {r.alert_id: r for r in rows}


def list_windows(
    session: Session, config: Config, now: datetime, include_past: bool = False
) -> list[dict[str, Any]]:
    """Windows for `escalator maintenance list` and the API: added ones (current and
    future; past ones too with `include_past`) and the config's next occurrences."""
    query = select(MaintenanceRow).order_by(MaintenanceRow.starts_at, MaintenanceRow.id)
    if not include_past:
        query = query.where(MaintenanceRow.ends_at > now, MaintenanceRow.ended_at.is_(None))
    counts: dict[str, int] = {}
    for window_key in session.scalars(
        select(SuppressionRow.window).where(SuppressionRow.released_at.is_(None))
    ):
        counts[window_key] = counts.get(window_key, 0) + 1
    out: list[dict[str, Any]] = []
    for row in session.scalars(query):
        window = window_of(row)
        out.append(_view(window, now, counts, row.created_at, row.ended_by))
    for recurring in config.maintenance:
        upcoming = occurrences(recurring, now, now + timedelta(days=8))
        if upcoming:
            out.append(_view(upcoming[0], now, counts, None, None))
    return out


def _view(
    window: Window,
    now: datetime,
    counts: dict[str, int],
    created_at: datetime | None,
    ended_by: str | None,
) -> dict[str, Any]:
    if window.ends_at <= now:
        state = "ended"
    elif window.active(now):
        state = "active"
    else:
        state = "scheduled"
    return {
        "id": window.key,
        "state": state,
        "match": window.match,
        "match_re": window.match_re,
        # JSON times: RFC 3339, UTC, `Z` (the one rule, escalator/read/times.py).
        "starts_at": rfc3339(window.starts_at),
        "ends_at": rfc3339(window.ends_at),
        "reason": window.reason,
        "created_by": window.created_by,
        "created_at": rfc3339(created_at),
        "ended_by": ended_by,
        "include_open": window.include_open,
        "holding": counts.get(window.key, 0),
    }
