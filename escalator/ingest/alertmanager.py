"""Alertmanager's webhook (version 4) into tracked alerts.

Alertmanager posts the whole group every time, delivers at least once, and in a cluster
each peer may post the same group: so ingest is idempotent per alert occurrence
(fingerprint + startsAt). A repeat changes nothing but labels and annotations, a
`resolved` entry closes just that alert, and a firing after close has a new startsAt and
opens a new alert.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from escalator.config import Config
from escalator.escalation import machine
from escalator.escalation.apply import EffectRows, effect_rows, state_of
from escalator.escalation.machine import AlertState, Resolve, Tick
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.incidents.protocol import alert_identity, is_severity_rise
from escalator.incidents.store import OpenedAlert, alerts_opened, record_decision
from escalator.ingest.bulk import insert_rows
from escalator.ingest.lookup import lock_occurrences, occurrences, open_identities
from escalator.ingest.rejections import (
    SEVERITY_MAX_CHARS,
    RejectedAlert,
    reasons,
    refused,
    rejection_fields,
)
from escalator.ingest.severity import absorb_severity_rise, aliased_row
from escalator.maintenance.store import active_windows, suppress_new
from escalator.maintenance.windows import Window, covering
from escalator.store.tables import AlertAliasRow, AlertRow, OutboxRow, TimelineRow
from escalator.store.timeline import timeline_row

# Picks the policy for an alert's labels (Config.route, or a source's fixed policy).
Router = Callable[[dict[str, str]], str | None]


_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, tzinfo=UTC)


class AMAlert(BaseModel):
    # Unknown fields are allowed: Alertmanager adds fields between versions.
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    # With an offset, and within what every backend stores once converted to UTC: checked
    # by pydantic itself (in Rust, no Python call per alert), per alert (see AMWebhook).
    startsAt: AwareDatetime = Field(gt=_EARLIEST, lt=_LATEST)
    endsAt: AwareDatetime | None = Field(default=None, lt=_LATEST)  # Go's zero time: not ended
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
    # A tuple default, not a default_factory: pydantic inspects a factory's signature on
    # every instance, which costs more than validating a small body.
    _rejected: tuple[RejectedAlert, ...] = PrivateAttr(default=())

    @property
    def rejected(self) -> tuple[RejectedAlert, ...]:
        """Entries of `alerts` that failed validation (the rest are in `alerts`)."""
        return self._rejected

    @model_validator(mode="wrap")
    @classmethod
    def _per_alert(cls, data: object, handler: ValidatorFunctionWrapHandler) -> AMWebhook:
        """Validate alert by alert: one bad entry is refused alone (rejections.py), the body
        and its other alerts are taken. Only when the body as a whole fails (no version 4,
        `alerts` not a list) is it refused, with a 4xx. The common case, a valid body, is
        validated once as a whole."""
        try:
            model: AMWebhook = handler(data)
        except ValidationError as exc:
            entries = data.get("alerts") if isinstance(data, dict) else None
            if not isinstance(entries, list) or any(
                len(err["loc"]) < 2 or err["loc"][0] != "alerts" for err in exc.errors()
            ):
                raise
        else:
            # The one check pydantic cannot make in Rust (a bound on one label's value),
            # here as a plain loop: a validator function per alert costs more.
            limit = SEVERITY_MAX_CHARS
            if all(len(a.labels.get("severity") or "") <= limit for a in model.alerts):
                return model
            entries = data.get("alerts") if isinstance(data, dict) else model.alerts
        good: list[AMAlert] = []
        bad: list[RejectedAlert] = []
        for index, entry in enumerate(entries):
            try:
                alert = AMAlert.model_validate(entry)
            except ValidationError as exc:
                bad.append(refused(index, entry, reasons(exc)))
                continue
            if _severity_fits(alert.labels):
                good.append(alert)
            else:
                why = f"labels.severity: longer than {SEVERITY_MAX_CHARS} characters"
                bad.append(refused(index, entry, why))
        model = handler({**data, "alerts": good})  # type: ignore[dict-item]
        model._rejected = tuple(bad)
        return model


def _severity_fits(labels: dict[str, str]) -> bool:
    return len(labels.get("severity") or "") <= SEVERITY_MAX_CHARS


@dataclass
class IngestResult:
    opened: list[int] = field(default_factory=list)
    updated: int = 0
    resolved: list[int] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)
    ignored: int = 0
    # Opened inside a maintenance window: tracked, paging no one until it ends.
    suppressed: list[int] = field(default_factory=list)
    # Heartbeats this body beat (their alerts are not tracked themselves).
    heartbeats: list[str] = field(default_factory=list)
    # Entries refused one by one (each recorded as an EscalatorIngestRejected alert).
    rejected: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        # `rejected` only when there is one: the answer to a clean body is unchanged.
        return ({"rejected": self.rejected} if self.rejected else {}) | {
            "opened": self.opened,
            "updated": self.updated,
            "resolved": self.resolved,
            "unrouted": self.unrouted,
            "ignored": self.ignored,
            "suppressed": self.suppressed,
            "heartbeats": self.heartbeats,
        }


class CommittedFiring:
    """Firing occurrences this process has committed, with a digest of their content.

    Alertmanager re-sends every group on each `group_interval` with nothing new. A body
    whose every alert is a firing occurrence already committed with the same labels and
    annotations needs no transaction: what it says is durable already, so answering 2xx
    is still "after commit", and a storm of repeats does not queue behind the write lock.
    Bounded (oldest recorded evicted first); a miss (another replica's alert, an evicted one)
    takes the database path.
    """

    def __init__(self, capacity: int = 200_000):
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, datetime], int] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _digest(alert: AMAlert) -> int:
        # Items in the order sent (Alertmanager sorts them): a reordering only misses the
        # cache and takes the database path, which is always right.
        return hash((tuple(alert.labels.items()), tuple(alert.annotations.items())))

    def covers(self, payload: AMWebhook) -> bool:
        if not payload.alerts or payload.rejected:  # a refusal is answered from the store
            return False
        seen, digest = self._seen, self._digest
        with self._lock:
            for alert in payload.alerts:
                # startsAt is a UTC instant: equal keys whatever offset it was written in.
                if alert.status != "firing" or seen.get(
                    (alert.fingerprint, alert.startsAt)
                ) != digest(alert):
                    return False
        # No reordering on a hit: eviction is oldest-recorded first, and an evicted repeat
        # takes the database path once and is recorded again.
        return True

    def record(self, payload: AMWebhook, result: IngestResult) -> None:
        """After the commit: remember what is now durable (never unrouted alerts)."""
        unrouted = set(result.unrouted)
        with self._lock:
            for alert in payload.alerts:
                key = (alert.fingerprint, alert.startsAt)
                if alert.status == "firing" and alert.fingerprint not in unrouted:
                    self._seen[key] = self._digest(alert)
                    self._seen.move_to_end(key)
                else:
                    self._seen.pop(key, None)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


def ingest(
    session: Session,
    payload: AMWebhook,
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    source: str = "alertmanager",
    route: Router | None = None,
) -> IngestResult:
    """Apply one webhook body inside the caller's transaction.

    Other sources (heartbeats, PagerDuty Events v2) come through here too, as bodies of
    the same shape: `source` names them on the timeline, `route` picks their policy.

    Set-based where the volume is: one query finds the known occurrences, and new alerts
    are opened with one insert per table per policy (Alertmanager sends groups of
    hundreds, and an alert storm is when this must not fall behind).
    """
    result = IngestResult()
    alerts = payload.alerts
    if payload.rejected:
        # Each refused entry is stored as an alert of its own that pages (rejections.py).
        alerts = alerts + [AMAlert.model_validate(rejection_fields(r)) for r in payload.rejected]
        result.rejected = [r.as_dict() for r in payload.rejected]
    # The same occurrence may appear twice in one body; the last entry wins. Keys are
    # handled in sorted order, so concurrent bodies take their row locks in one order.
    latest: dict[tuple[str, datetime], AMAlert] = {}
    for alert in alerts:
        latest[(alert.fingerprint, alert.startsAt)] = alert
    if not latest:
        return result
    latest = dict(sorted(latest.items()))
    identities = {key: alert_identity(alert.labels) for key, alert in latest.items()}
    lock_occurrences(session, (key[0] for key in latest), identities.values())
    table = AlertRow.__table__
    columns = (table.c.id, table.c.fingerprint, table.c.starts_at, table.c.labels,
               table.c.annotations)  # fmt: skip
    existing = {
        (fingerprint, starts_at): (alert_id, labels, annotations)
        for alert_id, fingerprint, starts_at, labels, annotations in occurrences(
            session, columns, table.c.fingerprint, table.c.starts_at, list(latest)
        )
    }
    to_open: list[tuple[tuple[str, datetime], AMAlert]] = []
    changed: list[dict[str, object]] = []
    for key, alert in latest.items():
        known = existing.get(key)
        if alert.status == "resolved":
            row = session.get(AlertRow, known[0], with_for_update=True) if known else None
            _resolve(session, row, alert, paging, policies, now, result, source)
        elif known is not None:
            alert_id, labels, annotations = known
            if labels != alert.labels or annotations != alert.annotations:
                changed.append(
                    {"b_id": alert_id, "labels": alert.labels, "annotations": alert.annotations}
                )
            result.updated += 1
        else:
            to_open.append((key, alert))
    if changed:  # one executemany for every repeat whose labels or annotations moved
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(labels=bindparam("labels"), annotations=bindparam("annotations"),
                    updated_at=now),
            changed,
        )  # fmt: skip
    if to_open:
        _open(session, to_open, identities, config, paging, policies, now, result, source, route)
    return result


def _open(
    session: Session,
    to_open: list[tuple[tuple[str, datetime], AMAlert]],
    identities: dict[tuple[str, datetime], str],
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    result: IngestResult,
    source: str = "alertmanager",
    route: Router | None = None,
) -> None:
    # Two tiers of one problem in one body (warning and critical, say): open the highest,
    # then let the others join it (or raise it) as if they had come in a later post.
    first, later = _highest_tier_first(to_open, identities)
    if later:
        _open(session, first, identities, config, paging, policies, now, result, source, route)
        _open(session, later, identities, config, paging, policies, now, result, source, route)
        return
    # A warning turning critical arrives with a new fingerprint: the same alert, moved up.
    # One query each narrows that check to the few occurrences it can concern.
    keys = [key for key, _ in to_open]
    aliases = {
        (fingerprint, starts_at)
        for fingerprint, starts_at in occurrences(
            session,
            (AlertAliasRow.fingerprint, AlertAliasRow.starts_at),
            AlertAliasRow.__table__.c.fingerprint,
            AlertAliasRow.__table__.c.starts_at,
            keys,
        )
    }
    opened_identities = open_identities(
        session, AlertRow.__table__.c.identity, AlertRow.__table__.c.status,
        (identities[key] for key in keys),
    )  # fmt: skip
    by_policy: dict[tuple[str, str | None], list[tuple[tuple[str, datetime], AMAlert]]] = {}
    windows: list[Window] | None = None
    holding: dict[str | None, Window | None] = {None: None}
    for key, alert in to_open:
        if (key in aliases or identities[key] in opened_identities) and absorb_severity_rise(
            session, *key, alert.labels, alert.annotations, config, paging, policies, now
        ):
            result.updated += 1
            continue
        name = (route or config.route)(alert.labels)
        if name is None:
            result.unrouted.append(alert.fingerprint)
            continue
        if windows is None:  # one query per body, only when something opens
            windows = active_windows(session, config, now)
        window = covering(windows, alert.labels, now) if windows else None
        if window is not None:
            holding[window.key] = window
        by_policy.setdefault((name, window and window.key), []).append((key, alert))
    opened: list[OpenedAlert] = []
    for (name, window_key), group in by_policy.items():
        group_opened = _open_group(
            session, name, group, identities, config, paging, policies, now, result,
            source, holding[window_key],
        )  # fmt: skip
        opened.extend(group_opened)
    if opened:
        alerts_opened(session, opened, config, now)  # response-time SLAs; incidents


def _highest_tier_first(
    to_open: list[tuple[tuple[str, datetime], AMAlert]],
    identities: dict[tuple[str, datetime], str],
) -> tuple[list[tuple[tuple[str, datetime], AMAlert]], list[tuple[tuple[str, datetime], AMAlert]]]:
    """(the highest-severity occurrence of each problem, every other occurrence)."""
    best: dict[str, tuple[tuple[str, datetime], AMAlert]] = {}
    for key, alert in to_open:
        identity = identities[key]
        held = best.get(identity)
        if held is None or is_severity_rise(
            held[1].labels.get("severity"), alert.labels.get("severity")
        ):
            best[identity] = (key, alert)
    first = list(best.values())
    if len(first) == len(to_open):
        return to_open, []
    chosen = {key for key, _ in first}
    return first, [(key, alert) for key, alert in to_open if key not in chosen]


def _open_group(
    session: Session,
    name: str,
    group: list[tuple[tuple[str, datetime], AMAlert]],
    identities: dict[tuple[str, datetime], str],
    config: Config,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    result: IngestResult,
    source: str = "alertmanager",
    window: Window | None = None,
) -> list[OpenedAlert]:
    """Open alerts that share a policy. Level 0 is decided here, in the same transaction:
    when Alertmanager gets its 2xx the first page is already in the outbox. Every alert
    opened at the same moment under the same policy gets the same decision, so the machine
    runs once for the group.

    Inside a maintenance `window` the escalation clock starts at the window's end, so the
    machine decides nothing now; the engine releases them then (escalator.maintenance.store).
    """
    policy = config.policies[name]
    pid = policies.ensure(session, name, policy, now)
    state = AlertState.opened(now)
    if window is not None:
        state = AlertState(opened_at=now, clock_base=window.ends_at)
    decision = machine.step(state, Tick(), now, policy, paging)
    state = {k: getattr(decision.state, k) for k in AlertState.__dataclass_fields__}
    values = [
        {
            "fingerprint": key[0],
            "starts_at": key[1],
            "ends_at": None,
            "alertname": alert.labels.get("alertname", "(no alertname)"),
            "identity": identities[key],
            "severity": alert.labels.get("severity"),
            "labels": alert.labels,
            "annotations": alert.annotations,
            "generator_url": alert.generatorURL or None,
            "policy_name": name,
            "policy_id": pid,
            **state,
            "next_action_at": decision.next_action_at,
            "updated_at": now,
        }
        for key, alert in group
    ]
    # ON CONFLICT DO NOTHING: an HA peer may have opened some of them a moment ago.
    inserted = insert_rows(
        session, AlertRow.__table__, values, conflict=("fingerprint", "starts_at"),
        returning=("id", "fingerprint", "starts_at"),
    )  # fmt: skip
    ids = {index: row[0] for index, row in inserted}
    template = effect_rows(0, decision, paging, now)
    rows = EffectRows()
    opened = []
    held: list[int] = []
    for index, (key, alert) in enumerate(group):
        alert_id = ids.get(index)
        if alert_id is None:  # an HA peer's post opened it first
            result.updated += 1
            continue
        detail = f"opened from {_SOURCES.get(source, source)} (fingerprint {key[0]}, policy {name})"
        rows.timeline.append(timeline_row(alert_id, now, "opened", detail, source, source))
        mine = template.for_alert(alert_id)
        rows.timeline.extend(mine.timeline)
        rows.outbox.extend(mine.outbox)
        result.opened.append(alert_id)
        if window is None:
            opened.append(OpenedAlert(alert_id, alert.labels.get("severity"), name))
        else:  # no incident, no response-time SLA: not until it escalates
            held.append(alert_id)
    insert_rows(session, TimelineRow.__table__, rows.timeline)
    insert_rows(session, OutboxRow.__table__, rows.outbox)
    if held:
        assert window is not None
        suppress_new(session, window, held, now)
        result.suppressed.extend(held)
    return opened


def _resolve(
    session: Session,
    row: AlertRow | None,
    alert: AMAlert,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
    result: IngestResult,
    source: str = "alertmanager",
) -> None:
    row, held = aliased_row(session, row, alert.fingerprint, alert.startsAt, now)
    if held:  # one occurrence of an alert whose severity rose cleared; the other fires on
        result.updated += 1
        return
    if row is None or row.status == "resolved":
        # Never seen (opened before escalator ran, or unrouted) or already closed.
        result.ignored += 1
        return
    if alert.endsAt is not None and alert.endsAt.year > 1:
        row.ends_at = alert.endsAt
    policy = policies.get(session, row.policy_id)
    decision = machine.step(state_of(row), Resolve(by=source, via=source), now, policy)
    record_decision(session, row, decision, paging, now)
    result.resolved.append(row.id)


_SOURCES = {
    "alertmanager": "Alertmanager",
    "heartbeat": "a missed heartbeat",
    "events_v2": "PagerDuty Events API v2",
}
