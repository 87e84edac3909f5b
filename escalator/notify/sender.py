"""The sender drains the outbox in small stages, like Alertmanager's notification pipeline:
claim (lease due rows) -> inhibit (drop pages an ack or resolve made moot) -> bundle and
rate-limit (one message per person and method) -> send -> record (timeline, retry with
backoff, or fall back to the next contact method).

Delivery is at least once: rows are claimed before the provider is called and marked sent
after, so a crash in between re-sends that page, never drops it. Running, each channel has
its own lane (escalator.notify.lanes): a bounded pool of concurrent sends with a hard
deadline per attempt, so a slow or hung provider holds up only its own channel. A page in
flight is owned by this process's delivery worker for as long as the worker heartbeats
(escalator.notify.leases): another replica takes it over within seconds of a crash, a
restarted daemon at once. Recording is fenced on (row, worker, attempt) and never locks the
alert row, so it does not wait for ingest.

Rules (the README's "Paging channels" repeats them for users):
- Bundling. Due pages to one person by one method go out as ONE message listing the alerts.
  The first message goes at once; pages falling due within `channels.bundle_window` of the
  last message to that person and method wait for the end of the window and go together.
  A message in flight counts as sent at the moment it was claimed, and on PostgreSQL the
  decision for one person and method is taken under an advisory lock, so concurrent lanes
  and replicas still send one bundle per window.
- Rate limits. At most `channels.rate_limits[method].max` messages per person per `per`.
  Pages over the limit wait until the limit frees and go out as one bundle with every
  page held meanwhile: held, never dropped. The first page of a new incident (alerts whose
  `channels.incident_labels` values were not sent to that person by that method within
  the window) is never held back: it goes at once and takes the held pages with it.
- Retry. `retry` results (HTTP 429 / Twilio 20429, 5xx, timeouts, SMTP 4xx) are retried
  with exponential backoff (`engine.send_retry_base`, doubling, at most 5 min) up to
  `engine.send_max_attempts`; then the method counts as failed.
- Fallback. A `failed` result (Twilio 21211, 21610, 21614, other 4xx; SMTP 5xx; retries
  exhausted) or a failed / undelivered / busy / no-answer status callback moves the page
  to the person's next contact method at once: the next pending method of that page is
  brought forward to now; if the person was reached no other way, an untried method with
  an address (SMS, voice, email), else the console, is added.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Channels as ChannelSettings
from escalator.config import Config
from escalator.config import Engine as EngineSettings
from escalator.escalation.machine import condition_holds
from escalator.notify.channels.base import Channel, Delivery, Message, SendResult
from escalator.notify.lanes import Attempt, Lane, LaneHost, Recorder
from escalator.notify.leases import Workers
from escalator.notify.message import Pages
from escalator.notify.metrics import DeliveryMetrics
from escalator.store.clock import Clock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow
from escalator.store.timeline import note

log = logging.getLogger("escalator.sender")

_MAX_BACKOFF = timedelta(minutes=5)
# The console is the developer's view and the last resort: one line per page, never held.
_UNBUNDLED = frozenset({"console"})
# Marks a pending row the rate limit or the bundle window holds (so later sends fold it in).
_HELD = "held: "
# Status callbacks that mean the person never got the message or call.
FAILED_STATUSES = frozenset({"failed", "undelivered", "busy", "no-answer", "canceled"})
DELIVERED_STATUSES = frozenset({"delivered", "completed", "read"})
_PERSON_METHODS = ("sms", "voice", "email")


# Pages the console lane claims ahead of its single sender thread: printing is instant, so
# claiming one at a time would spend the store's write lock on claims. Claimed-but-unprinted
# pages are never repeated by a crash (only taken back), so this does not widen the bound.
_CONSOLE_PREFETCH = 16


def _lock_key(*parts: str) -> int:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Bundle:
    """One message to send: the lead row's delivery, the message, every row it covers.

    `tokens`: (row id, attempts at claim) — recording is fenced on them and on the worker.
    """

    delivery: Delivery
    message: Message
    row_ids: tuple[int, ...]
    tokens: tuple[tuple[int, int], ...] = ()


class Sender(LaneHost):
    def __init__(
        self,
        factory: sessionmaker[Session],
        channels: Mapping[str, Channel],
        clock: Clock,
        settings: EngineSettings,
        batch_size: int = 100,
        config: Config | None = None,
        metrics: DeliveryMetrics | None = None,
        heartbeat_factory: sessionmaker[Session] | None = None,
    ):
        self._factory = factory
        self._channels = dict(channels)
        self._clock = clock
        self._settings = settings
        self._config = config
        self._delivery: ChannelSettings = config.channels if config else ChannelSettings()
        self._batch = batch_size
        # The heartbeat gets its own connection when given one: it must never queue behind
        # the lanes for a pooled connection, or a busy replica would look dead.
        self._workers = Workers(heartbeat_factory or factory)
        self._owner = self._workers.id
        self._lock = threading.Lock()
        self.metrics = metrics if metrics is not None else DeliveryMetrics(registry=None)
        self.metrics.prepare(self._channels)
        self._recorder = Recorder(self._record_many)
        self._lanes: dict[str, Lane] = {}
        self._postgres = factory.kw["bind"].dialect.name == "postgresql"
        # Page templates and runbooks from this daemon's config, built and held here: pages
        # carry their runbook from the first drain on, with no process-wide state set by
        # some earlier tick.
        self._pages = Pages.from_config(config)

    @property
    def pages(self) -> Pages:
        """The daemon's page renderer (the voice webhook speaks through it too)."""
        return self._pages

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._channels)

    @property
    def worker(self) -> str:
        """This process's delivery worker id (host:pid:nonce)."""
        return self._owner

    @property
    def lanes(self) -> Mapping[str, Lane]:
        return self._lanes

    def drain(self) -> int:
        """Send everything due now, in the calling thread; returns how many messages were
        attempted. Tests and one-shot commands use it; `start()` runs the lanes instead."""
        attempted = 0
        with self._lock:
            self._workers.beat()
            while True:
                bundles, touched = self._claim(self._clock.now())
                if not touched:
                    return attempted
                for bundle in bundles:
                    result = self._send(bundle.delivery, bundle.message)
                    self.metrics.attempts.labels(bundle.delivery.method, result.outcome).inc()
                    self._record_many([Attempt(bundle, result)])
                    attempted += 1

    # lanes --------------------------------------------------------------------------------

    def start(self, tick: timedelta) -> None:
        """Run one lane per channel in background threads, with the worker's heartbeat."""
        if self._lanes:
            return
        self._warm_templates()
        self._workers.start()
        self._recorder.start()
        for method in self._channels:
            pool, deadline, _connect = self._delivery.lane(method)
            prefetch = _CONSOLE_PREFETCH if method == "console" else 0
            self._lanes[method] = Lane(
                method,
                self,
                self._recorder,
                self.metrics,
                pool,
                deadline.total_seconds(),
                max(tick.total_seconds(), 0.05),
                prefetch,
                wait_for_record=method == "console",
            )
        for lane in self._lanes.values():
            lane.start()

    def _warm_templates(self) -> None:
        """Compile every page template now: the first page of a storm should not wait
        ~50 ms for Jinja to compile what it needs."""
        from escalator.incidents.templates import PAGE_KINDS

        for method in self._channels:
            for kind in PAGE_KINDS:
                try:
                    self._pages.templates.template(kind, method)
                except Exception:  # a broken template is reported when a page uses it
                    continue

    def wake(self) -> None:
        for lane in self._lanes.values():
            lane.wake()

    def stop(self, grace: timedelta | None = None) -> None:
        """Graceful stop: claim nothing more, hand back pages not started, give sends in
        flight `grace` to finish, hand back the rest, and deregister the worker so another
        replica may take anything left at once."""
        if not self._lanes:
            return
        grace = self._settings.shutdown_grace if grace is None else grace
        # Sends in flight get the grace minus a reserve for handing back what is left and
        # deregistering, so the whole stop fits in the grace.
        seconds = grace.total_seconds()
        until = time.monotonic() + seconds - min(1.0, seconds / 4)
        lanes = list(self._lanes.values())
        for lane in lanes:
            self._release_quietly(lane.stop_claiming(), started=False)
        for lane in lanes:
            left = lane.wait_idle(until)
            if left:
                log.warning(
                    "%s: %d sends still in flight after the %ss grace; handing them back",
                    lane.method,
                    len(left),
                    grace.total_seconds(),
                )
                self._release_quietly(left, started=True)
        self._recorder.stop(timeout=max(until - time.monotonic(), 0.5))
        self._workers.stop()
        self._lanes = {}

    def _release_quietly(self, bundles: Sequence[Bundle], started: bool) -> None:
        try:
            self.release(bundles, started)
        except Exception as exc:  # the store is gone: the heartbeat's age frees them
            log.warning("could not hand back %d pages: %s", len(bundles), exc)

    def release(self, bundles: Sequence[Bundle], started: bool) -> None:
        """Give claimed pages back (pending, due now). `started=False`: never sent, so the
        attempt does not count."""
        tokens = [t for b in bundles for t in b.tokens]
        if not tokens:
            return
        with transaction(self._factory) as session:
            for row_id, attempt in tokens:
                session.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row_id,
                        OutboxRow.status == "sending",
                        OutboxRow.leased_by == self._owner,
                        OutboxRow.attempts == attempt,
                    )
                    .values(
                        status="pending",
                        leased_by=None,
                        claimed_at=None,
                        lease_until=None,
                        attempts=attempt - (0 if started else 1),
                    )
                )

    def claim_for(self, method: str, limit: int) -> list[Bundle]:
        bundles, _touched = self._claim(self._clock.now(), method, limit)
        return bundles

    def send_now(self, bundle: Bundle) -> SendResult:
        return self._send(bundle.delivery, bundle.message)

    def ready(self, stale: float) -> str | None:
        """Why delivery is not ready (a lane or the heartbeat has not cycled for `stale`
        seconds), or None."""
        now = time.time()
        for method, lane in self._lanes.items():
            if lane.last_cycle is not None and now - lane.last_cycle > stale:
                return f"delivery lane {method} has not completed a cycle for {stale:g}s"
        return None

    def observe_queue(self) -> None:
        """Due pending rows per channel and the age of the oldest, into the metrics."""
        now = self._clock.now()
        with transaction(self._factory) as session:
            rows = session.execute(
                select(OutboxRow.method, func.count(), func.min(OutboxRow.due_at))
                .where(OutboxRow.status == "pending", OutboxRow.due_at <= now)
                .group_by(OutboxRow.method)
            ).all()
        depth = {m: (n, (now - oldest).total_seconds() if oldest else 0.0) for m, n, oldest in rows}
        self.metrics.observe_queue(depth, self._channels)

    # claim -> inhibit -> bundle and rate-limit ------------------------------------------

    def _claim(
        self, now: datetime, method: str | None = None, limit: int | None = None
    ) -> tuple[list[Bundle], int]:
        """Claim due rows as bundles; returns the bundles and how many rows were looked at.

        Due means pending and due, or in flight with a worker that is dead (no heartbeat
        for a few seconds, or a dead process on this host) and no unexpired old-style lease."""
        with transaction(self._factory) as session:
            live = self._workers.live(session)
            query = select(OutboxRow).where(
                or_(
                    (OutboxRow.status == "pending") & (OutboxRow.due_at <= now),
                    (OutboxRow.status == "sending")
                    & (OutboxRow.leased_by.is_(None) | OutboxRow.leased_by.notin_(live))
                    # A lease from before 0009 (or a rolling upgrade's older replica) is
                    # honoured to its end; this version's claims set none.
                    & (OutboxRow.lease_until.is_(None) | (OutboxRow.lease_until <= now)),
                )
            )
            if method is not None:
                query = query.where(OutboxRow.method == method)
            query = (
                query.order_by(OutboxRow.due_at, OutboxRow.id)
                .limit(limit or self._batch)
                .with_for_update(skip_locked=True)
            )
            rows = list(session.scalars(query))
            if not rows:
                return [], 0
            alerts = self._alerts(session, rows)
            groups: dict[tuple[str, ...], list[OutboxRow]] = defaultdict(list)
            for row in self._inhibit(rows, alerts):
                groups[self._group_key(row)].append(row)
            bundled = [g for k, g in groups.items() if k[0] == "bundle"]
            if bundled and self._postgres:
                # One bundle per person, window and method across replicas: the decision
                # for a person is taken under their advisory lock, so a replica deciding
                # after us sees our claim (in flight) in the history. Sorted: every replica
                # takes the locks in one order, so none waits for another in a cycle.
                keys = sorted({_lock_key(*k[1:4]) for k in groups if k[0] == "bundle"})
                session.execute(
                    text(
                        "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[]))"
                        " WITH ORDINALITY AS t(k, i) ORDER BY i"
                    ),
                    {"keys": keys},
                )
            history = self._history(session, bundled, now)
            extra = self._more_rows(session, bundled, {r.id for r in rows}, now)
            if extra:
                alerts.update(self._alerts(session, [r for g in extra.values() for r in g]))
                # A page that rides along is still dropped when an ack or resolve made it moot.
                extra = {k: self._inhibit(g, alerts) for k, g in extra.items()}
            bundles = []
            for key, group in sorted(groups.items()):
                if key[0] == "bundle":
                    hold, why = self._hold_until(group, alerts, now, history)
                    if hold is not None:
                        self._hold(session, group, hold, why, now)
                        continue
                    group = group + extra.get(self._person_key(group[0]), [])
                bundles.append(self._lease(group, alerts, now))
            return bundles, len(rows)

    @staticmethod
    def _alerts(session: Session, rows: Sequence[OutboxRow]) -> dict[int, AlertRow]:
        ids = {r.alert_id for r in rows if r.alert_id is not None}
        if not ids:
            return {}
        return {a.id: a for a in session.scalars(select(AlertRow).where(AlertRow.id.in_(ids)))}

    def _inhibit(self, rows: list[OutboxRow], alerts: dict[int, AlertRow]) -> list[OutboxRow]:
        live = []
        for row in rows:
            alert = alerts.get(row.alert_id) if row.alert_id is not None else None
            if (
                alert is not None
                and row.condition
                and not condition_holds(row.condition, alert.status)  # type: ignore[arg-type]
            ):
                row.status = "cancelled"
                row.last_error = f"cancelled: alert {alert.status}"
                continue
            if row.status == "sending":
                log.warning("outbox %s: worker %s is gone; sending again", row.id, row.leased_by)
            live.append(row)
        return live

    @staticmethod
    def _group_key(row: OutboxRow) -> tuple[str, ...]:
        if row.method in _UNBUNDLED or row.alert_id is None or "text" in (row.payload or {}):
            return ("row", str(row.id))
        return ("bundle", row.recipient_kind, row.recipient, row.method, row.address or "")

    def _incident(self, alert: AlertRow | None) -> tuple[str, ...]:
        if alert is None:
            return ()
        return tuple(str(alert.labels.get(k, "")) for k in self._delivery.incident_labels)

    def _span(self, method: str) -> timedelta:
        limit = self._delivery.rate_limits.get(method)  # type: ignore[call-overload]
        return max(self._delivery.bundle_window, limit.per if limit else timedelta(0))

    def _history(
        self,
        session: Session,
        groups: Sequence[list[OutboxRow]],
        now: datetime,
    ) -> dict[tuple[str, str, str], list[tuple[Any, ...]]]:
        """Recent messages to the people of `groups`, for all of them in two queries (a
        lane's claim should cost a few round trips, not a few per person): sent within the
        longest span, and in flight anywhere, which count as sent when they were claimed."""
        keys = {(g[0].recipient_kind, g[0].recipient, g[0].method) for g in groups}
        keys = {k for k in keys if self._span(k[2]) > timedelta(0)}
        history: dict[tuple[str, str, str], list[tuple[Any, ...]]] = defaultdict(list)
        if not keys:
            return history
        span = max(self._span(k[2]) for k in keys)
        mine = [r.id for g in groups for r in g]
        # A tuple IN is one cached statement whatever the number of people.
        who = tuple_(OutboxRow.recipient_kind, OutboxRow.recipient, OutboxRow.method).in_(
            sorted(keys)
        )
        columns = (
            OutboxRow.recipient_kind,
            OutboxRow.recipient,
            OutboxRow.method,
            OutboxRow.id,
            OutboxRow.payload,
            AlertRow.labels,
        )
        sent = session.execute(
            select(*columns, OutboxRow.provider_id, OutboxRow.sent_at)
            .join(AlertRow, AlertRow.id == OutboxRow.alert_id, isouter=True)
            .where(who, OutboxRow.sent_at.is_not(None), OutboxRow.sent_at > now - span)
        ).all()
        for kind, recipient, method, row_id, payload, labels, provider_id, at in sent:
            if at > now - self._span(method):
                history[(kind, recipient, method)].append(
                    (provider_id, row_id, at, payload, labels)
                )
        flying = session.execute(
            select(*columns, OutboxRow.leased_by, OutboxRow.claimed_at)
            .join(AlertRow, AlertRow.id == OutboxRow.alert_id, isouter=True)
            .where(who, OutboxRow.status == "sending", OutboxRow.id.notin_(mine))
        ).all()
        for kind, recipient, method, row_id, payload, labels, owner, claimed in flying:
            history[(kind, recipient, method)].append(
                (f"flight-{owner}-{claimed}", row_id, claimed or now, payload, labels)
            )
        return history

    def _hold_until(
        self,
        group: list[OutboxRow],
        alerts: dict[int, AlertRow],
        now: datetime,
        history: Mapping[tuple[str, str, str], list[tuple[Any, ...]]],
    ) -> tuple[datetime | None, str]:
        """When this group may go, if not now: the bundle window, then the rate limit."""
        first = group[0]
        window = self._delivery.bundle_window
        limit = self._delivery.rate_limits.get(first.method)  # type: ignore[call-overload]
        if self._span(first.method) <= timedelta(0):
            return None, ""
        recent = history.get((first.recipient_kind, first.recipient, first.method), [])
        if not recent:
            return None, ""
        messages: dict[str, datetime] = {}
        firsts: set[str] = set()
        seen: set[tuple[str, ...]] = set()
        for provider_id, row_id, sent_at, payload, labels in recent:
            key = provider_id or f"row-{row_id}"
            messages[key] = min(sent_at, messages.get(key, sent_at))
            if (payload or {}).get("incident_first"):
                firsts.add(key)
            seen.add(tuple(str((labels or {}).get(k, "")) for k in self._delivery.incident_labels))
        if any(self._incident(alerts.get(r.alert_id or -1)) not in seen for r in group):
            # The first page of a new incident is never held back; so that a storm of
            # distinct alert names cannot use this to flood, such messages have their own
            # budget of `max` per window on top of the ordinary one.
            budget = limit.max if limit is not None else None
            if budget is None or len(firsts) < budget:
                for row in group:
                    row.payload = {**row.payload, "incident_first": True}
                return None, ""
        hold, why = now, ""
        last = max(messages.values())
        if last + window > hold:
            hold, why = last + window, f"bundle window {window.total_seconds():g}s"
        if limit is not None:
            inside = sorted(t for t in messages.values() if t > now - limit.per)
            if len(inside) >= limit.max:
                frees = inside[len(inside) - limit.max] + limit.per
                if frees > hold:
                    hold = frees
                    why = f"rate limit {limit.max} {first.method} per {limit.per}"
        return (hold, why) if hold > now else (None, "")

    def _hold(
        self, session: Session, group: list[OutboxRow], until: datetime, why: str, now: datetime
    ) -> None:
        for row in group:
            if row.alert_id is not None and not (row.last_error or "").startswith(_HELD):
                note(
                    session,
                    row.alert_id,
                    now,
                    "send_held",
                    f"{row.method} to {row.recipient} held until {until:%H:%M:%S} ({why}); "
                    "it goes out in the next bundle",
                    row.recipient,
                    row.method,
                    row.level,
                )
            row.status, row.due_at, row.lease_until = "pending", until, None
            row.last_error = f"{_HELD}{why}"

    @staticmethod
    def _person_key(row: OutboxRow) -> tuple[str, str, str, str]:
        return (row.recipient_kind, row.recipient, row.method, row.address or "")

    def _more_rows(
        self, session: Session, groups: Sequence[list[OutboxRow]], exclude: set[int], now: datetime
    ) -> dict[tuple[str, str, str, str], list[OutboxRow]]:
        """Rows held for the people of `groups`, and any others of theirs already due (a
        lane claims only as many rows as it has room for): they ride along with the message
        when it goes. One query for the whole claim."""
        if not groups:
            return {}
        who = tuple_(OutboxRow.recipient_kind, OutboxRow.recipient, OutboxRow.method).in_(
            sorted({(g[0].recipient_kind, g[0].recipient, g[0].method) for g in groups})
        )
        rows = session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.status == "pending",
                who,
                or_(OutboxRow.last_error.like(f"{_HELD}%"), OutboxRow.due_at <= now),
            )
            .order_by(OutboxRow.id)
            .with_for_update(skip_locked=True)
        )
        found: dict[tuple[str, str, str, str], list[OutboxRow]] = defaultdict(list)
        for row in rows:
            if row.id not in exclude and row.alert_id is not None and "text" not in row.payload:
                found[self._person_key(row)].append(row)
        return found

    def _lease(self, group: list[OutboxRow], alerts: dict[int, AlertRow], now: datetime) -> Bundle:
        lead = min(group, key=lambda r: r.id)
        for row in group:
            row.status = "sending"
            row.lease_until = None  # owned while the worker heartbeats (leases.py)
            row.leased_by = self._owner
            row.claimed_at = now
            row.attempts += 1
            if (row.last_error or "").startswith(_HELD):
                row.last_error = None
        delivery = Delivery(
            id=lead.id,
            alert_id=lead.alert_id,
            recipient_kind=lead.recipient_kind,
            recipient=lead.recipient,
            method=lead.method,
            address=lead.address,
            level=lead.level,
            urgency=lead.urgency,
            reason=lead.reason,
            attempts=lead.attempts,
            payload={**lead.payload, "bundle": [r.id for r in group]},
        )
        # The same alert may reach a person twice in one page (rotation and team): list once.
        unique = {r.alert_id: alerts[r.alert_id] for r in group if r.alert_id in alerts}
        message = self._pages.render_bundle(list(unique.values()), delivery, now)
        return Bundle(
            delivery, message, tuple(r.id for r in group), tuple((r.id, r.attempts) for r in group)
        )

    # send ---------------------------------------------------------------------------------

    def _send(self, delivery: Delivery, message: Message) -> SendResult:
        channel = self._channels.get(delivery.method)
        if channel is None:
            return SendResult("failed", f"no channel configured for {delivery.method}")
        try:
            return channel.send(delivery, message)
        except Exception as exc:  # a channel bug must not kill the sender loop
            log.exception("channel %s raised", delivery.method)
            return SendResult("retry", f"{type(exc).__name__}: {exc}")

    def _backoff(self, attempts: int) -> timedelta:
        return min(self._settings.send_retry_base * (2 ** max(attempts - 1, 0)), _MAX_BACKOFF)

    # record -------------------------------------------------------------------------------

    def _record_many(self, attempts: Sequence[Attempt]) -> None:
        """Record finished attempts in one transaction (the recorder's group commit)."""
        with transaction(self._factory) as session:
            for attempt in attempts:
                self._record(session, attempt.bundle, attempt.result)

    def _record(self, session: Session, bundle: Bundle, result: SendResult) -> None:
        now = self._clock.now()
        delivery = bundle.delivery
        size = len(bundle.row_ids)
        tokens = dict(bundle.tokens)
        # Every row of one message shares an id, so a status callback finds them all and
        # the rate limit counts messages, not alerts.
        provider_id = result.provider_id or f"escalator-{delivery.id}-{delivery.attempts}"
        # Fenced: only rows this worker still owns for this very attempt. No alert row
        # is locked (the timeline has no foreign key), so ingest never holds this up.
        rows = session.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.id.in_(bundle.row_ids),
                OutboxRow.status == "sending",
                OutboxRow.leased_by == self._owner,
            )
            .order_by(OutboxRow.id)
            .with_for_update()
        )
        for row in rows:
            if tokens and tokens.get(row.id) != row.attempts:
                continue  # taken over and claimed again: that attempt records itself
            row.lease_until = None
            row.leased_by = None
            outcome = result.outcome
            if outcome == "retry" and row.attempts >= self._settings.send_max_attempts:
                outcome = "failed"
            what = f"{row.method} to {row.recipient}"
            if size > 1:
                what += f" (one message for {len(bundle.message.alert_ids)} alerts)"
            if outcome == "sent":
                row.status, row.sent_at, row.provider_id = "sent", now, provider_id
                kind, detail = "sent", what
            elif outcome == "retry":
                row.status, row.due_at = "pending", now + self._backoff(row.attempts)
                row.last_error = result.detail
                kind = "send_retry"
                detail = (
                    f"{what} failed (attempt {row.attempts}), retrying at {row.due_at:%H:%M:%S}"
                )
            else:
                row.status, row.last_error = "failed", result.detail
                row.provider_id = result.provider_id or row.provider_id
                kind, detail = "send_failed", f"{what} failed"
            if result.detail:
                detail += f": {result.detail}"
            if outcome == "failed":
                detail += f"; {self._fallback(session, row, now)}"
            if row.alert_id is not None:
                note(
                    session,
                    row.alert_id,
                    now,
                    kind,
                    detail,
                    row.recipient,
                    row.method,
                    row.level,
                )

    # fallback ------------------------------------------------------------------------------

    def _fallback(self, session: Session, row: OutboxRow, now: datetime) -> str:
        """Move the page `row` failed to deliver to the next contact method, at once.

        Returns what was done, for the timeline.
        """
        level = OutboxRow.level.is_(None) if row.level is None else OutboxRow.level == row.level
        siblings = list(
            session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.alert_id == row.alert_id
                    if row.alert_id is not None
                    else OutboxRow.alert_id.is_(None),
                    OutboxRow.recipient_kind == row.recipient_kind,
                    OutboxRow.recipient == row.recipient,
                    OutboxRow.created_at == row.created_at,
                    level,
                    OutboxRow.id != row.id,
                )
                .order_by(OutboxRow.id)
            )
        )
        order = self._method_order(row)
        later = order[order.index(row.method) + 1 :] if row.method in order else order
        for method in later:
            for sibling in siblings:
                if sibling.method == method and sibling.status == "pending":
                    sibling.due_at = min(sibling.due_at, now)
                    sibling.last_error = None
                    return f"trying {method} now"
        reached = [s.method for s in siblings if s.status in ("sending", "sent", "delivered")]
        if reached:
            return f"already sent by {', '.join(sorted(set(reached)))}"
        tried = {row.method} | {s.method for s in siblings}
        for method in [*later, *order, "console"]:
            if method in tried or method not in self._channels:
                continue
            address = self._address(row, method)
            if method != "console" and address is None:
                continue
            session.add(
                OutboxRow(
                    alert_id=row.alert_id,
                    recipient_kind=row.recipient_kind,
                    recipient=row.recipient,
                    method=method,
                    address=address,
                    level=row.level,
                    urgency=row.urgency,
                    condition=row.condition,
                    reason=row.reason,
                    payload={**row.payload, "fallback_from": row.method},
                    status="pending",
                    due_at=now,
                    attempts=0,
                    created_at=row.created_at,
                )
            )
            return f"falling back to {method}"
        return "no other contact method left"

    def _method_order(self, row: OutboxRow) -> list[str]:
        """The person's rules for this urgency, then their other methods."""
        if row.recipient_kind != "person" or self._config is None:
            return []
        person = self._config.person(row.recipient)
        if person is None:
            return []
        order = [r.method for r in person.rules.get(row.urgency, [])]  # type: ignore[call-overload]
        return list(dict.fromkeys([*order, *_PERSON_METHODS]))

    def _address(self, row: OutboxRow, method: str) -> str | None:
        if method == "console":
            return None
        if row.recipient_kind != "person" or self._config is None:
            return None
        person = self._config.person(row.recipient)
        return person.address(method) if person else None

    # status callbacks ------------------------------------------------------------------------

    def delivery_status(self, provider_id: str, status: str, detail: str = "") -> int:
        """A provider's report on a sent message (Twilio status callback).

        Failed, undelivered, busy, no-answer and canceled move the page to the next contact
        method at once; delivered and completed are recorded. Idempotent: Twilio retries
        callbacks, and only the first report of a final status changes anything.
        Returns how many outbox rows the report changed.
        """
        now = self._clock.now()
        status = status.lower()
        changed = 0
        with transaction(self._factory) as session:
            rows = list(
                session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.provider_id == provider_id)
                    .order_by(OutboxRow.id)
                    .with_for_update()
                )
            )
            for row in rows:
                if row.status != "sent":
                    continue
                what = f"{row.method} to {row.recipient} {status}"
                if detail:
                    what += f" ({detail})"
                if status in FAILED_STATUSES:
                    row.status, row.last_error = "failed", f"status callback: {status} {detail}"
                    kind, text = "send_failed", f"{what}; {self._fallback(session, row, now)}"
                elif status in DELIVERED_STATUSES:
                    row.status, kind, text = "delivered", "delivered", what
                else:
                    continue  # queued, sending, ringing...: not final
                changed += 1
                if row.alert_id is not None:
                    note(session, row.alert_id, now, kind, text, row.recipient, row.method)
        return changed
