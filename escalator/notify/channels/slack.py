"""The Slack app channel: Block Kit pages to `{channel: NAME}` targets, and the Slack work
of escalator.notify.slack_outbox (incident channels, updates in place, invites, archive).

It is a channel like the others (escalator.notify.base: a Delivery in, a SendResult out),
so the sender claims, leases, retries and falls back for it; what is Slack-specific is
here. Every operation is written to survive being run twice (a retry after a lost answer,
a lease taken over from a crashed replica):

- a post carries metadata naming the outbox row; a retry first looks for that message in
  the channel's recent history and reuses it instead of posting again;
- `conversations.create` answering `name_taken` means the channel exists (an earlier
  attempt created it): it is looked up by name, never created twice;
- invites skip members, a second pin is `already_pinned`, a second archive
  `already_archived`: all count as done.

Posted messages are remembered (escalator.store.slack_tables) so an ack, an escalation or
a resolve updates them in place with chat.update.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from escalator.config import Config
from escalator.config import SlackChannel as SlackSettings
from escalator.notify import slack_blocks
from escalator.notify import slack_outbox as ops
from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.notify.channels.slack_client import (
    Directory,
    Health,
    classify,
    error_code,
    make_client,
    retry_after_of,
)
from escalator.store.clock import Clock, SystemClock
from escalator.store.db import transaction
from escalator.store.slack_tables import SlackIncidentChannelRow, SlackMessageRow
from escalator.store.tables import AlertRow, OutboxRow

log = logging.getLogger("escalator.slack")

_HISTORY = 100  # recent messages searched for an earlier attempt's post
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class SlackApp:
    """The daemon's Slack app: one client, one directory of users, one health record,
    shared by the channel (sending) and the web router (buttons, modal, /escalator)."""

    def __init__(self, config: Config, client: WebClient | None = None, clock: Clock | None = None):
        settings = config.channels.slack
        if settings is None:
            raise ValueError("channels.slack is not configured")
        secret = settings.signing_secret.resolve()
        if secret is None:
            raise ValueError(
                f"channels.slack.signing_secret: {settings.signing_secret.describe()} is unset"
            )
        self.settings: SlackSettings = settings
        self.config = config
        self.signing_secret = secret
        self.client = client or make_client(settings)
        self.directory = Directory(self.client, config)
        self.health = Health()
        self.clock = clock or SystemClock()
        self.factory: sessionmaker[Session] | None = None
        # After `ratelimited` with a Retry-After too long to wait within an attempt, no call
        # goes to Slack before this (time.monotonic()); attempts until then end as `retry`.
        self.quiet_until = 0.0
        self.channel_ids: dict[str, str] = {}  # channel name -> ID, for names in the config

    def bind(self, factory: sessionmaker[Session]) -> None:
        """The store the channel records its messages and channels in."""
        self.factory = factory

    def check_auth_soon(self) -> None:
        """check_auth in the background: an unreachable Slack must not delay start-up."""
        threading.Thread(target=self.check_auth, name="slack-auth-test", daemon=True).start()

    def check_auth(self) -> str | None:
        """`auth.test` at start-up: an invalid token shows in /readyz at once, not at 3 a.m."""
        try:
            self.client.auth_test()
        except Exception as exc:
            result = classify(exc, self.health)
            log.warning("slack auth.test: %s", result.detail)
            return result.detail
        self.health.worked()
        return None


class SlackChannel:
    method = ops.METHOD

    def __init__(self, app: SlackApp):
        self.app = app

    @property
    def client(self) -> WebClient:
        return self.app.client

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.app.settings.channels)

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        op = delivery.payload.get(ops.OP)
        handler = {
            None: self._post_page,
            ops.OPEN_INCIDENT: self._open_incident,
            ops.INCIDENT_POST: self._incident_post,
            ops.INVITE: self._invite_op,
            ops.UPDATE: self._update,
            ops.ARCHIVE: self._archive,
        }.get(op)
        if handler is None:
            return SendResult("failed", f"unknown slack operation {op!r}")
        wait = self.app.quiet_until - time.monotonic()
        if wait > 0:
            return SendResult("retry", f"slack ratelimited: Retry-After has {wait:.1f}s to run")
        try:
            result = handler(delivery, message)
        except Exception as exc:
            result = classify(exc, self.app.health)
            after = retry_after_of(exc)
            if after is not None:
                self.app.quiet_until = max(self.app.quiet_until, time.monotonic() + after)
            log.warning("slack %s (outbox %s): %s", op or "post", delivery.id, result.detail)
            return result
        self.app.health.worked()
        return result

    def _incidents(self) -> frozenset[str]:
        """Severities whose alerts have an incident (and so a status-update button)."""
        settings = self.app.config.incidents
        return frozenset(settings.severities) if settings.enabled else frozenset()

    # store helpers ------------------------------------------------------------------------

    def _session(self) -> Any:
        if self.app.factory is None:
            raise RuntimeError("the Slack channel has no store (SlackApp.bind)")
        return transaction(self.app.factory)

    def _now(self) -> datetime:
        return self.app.clock.now()

    def _alerts(self, session: Session, ids: Sequence[int]) -> list[AlertRow]:
        if not ids:
            return []
        rows = session.scalars(select(AlertRow).where(AlertRow.id.in_(list(ids))))
        by_id = {r.id: r for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _remember(self, channel: str, ts: str, text: str, alert_ids: Sequence[int]) -> None:
        if not alert_ids:
            return
        with self._session() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            now = self._now()
            session.execute(
                insert(SlackMessageRow)
                .values(
                    [
                        {
                            "alert_id": a,
                            "channel": channel,
                            "ts": ts,
                            "text": text,
                            "posted_at": now,
                            "updated_at": None,
                        }
                        for a in alert_ids
                    ]
                )
                .on_conflict_do_nothing(index_elements=["channel", "ts", "alert_id"])
            )

    # posting ----------------------------------------------------------------------------------

    def _earlier_post(self, channel: str, key: str) -> str | None:
        """The ts of a message an earlier attempt of this work already posted, if any."""
        history = self.client.conversations_history(
            channel=channel, limit=_HISTORY, include_all_metadata=True
        )
        for msg in history.get("messages") or []:
            meta = msg.get("metadata") or {}
            if (
                meta.get("event_type") == slack_blocks.EVENT_TYPE
                and (meta.get("event_payload") or {}).get("key") == key
            ):
                return str(msg["ts"])
        return None

    def _post_once(
        self,
        channel: str,  # an ID
        key: str,
        text: str,
        alerts: Sequence[AlertRow],
        retrying: bool,
        alert_id: int | None,
    ) -> tuple[str, str, bool]:
        """(channel id, ts, posted now?) of the one message for `key`."""
        if retrying:
            found = self._earlier_post(channel, key)
            if found is not None:
                return channel, found, False
        answer = self.client.chat_postMessage(
            channel=channel,
            text=slack_blocks.fallback_text(text, alerts),
            blocks=slack_blocks.message_blocks(text, alerts, self._incidents()),
            metadata=slack_blocks.metadata(key, alert_id),
            unfurl_links=False,
        )
        return str(answer["channel"]), str(answer["ts"]), True

    def _channel_id(self, ref: str) -> str:
        """A configured channel as its ID (conversations.* take IDs only); names are looked
        up once and remembered."""
        if _CHANNEL_ID.match(ref):
            return ref
        name = ref.lstrip("#")
        found = self.app.channel_ids.get(name)
        if found is None:
            found = self._find_channel(name)
            if found is None:
                raise SlackApiError(
                    f"no channel named #{name}", {"ok": False, "error": "channel_not_found"}
                )
            self.app.channel_ids[name] = found
        return found

    def _post_page(self, delivery: Delivery, message: Message) -> SendResult:
        name = (delivery.address or delivery.recipient).lstrip("#")
        configured = self.app.settings.channels.get(name)
        if configured is None:
            return SendResult("failed", f"no Slack channel for #{name} (channels.slack.channels)")
        channel = self._channel_id(configured)
        ids = list(message.alert_ids or ((delivery.alert_id,) if delivery.alert_id else ()))
        with self._session() as session:
            alerts = self._alerts(session, ids)
        text = f"{message.title}\n{message.body}".strip()
        key = f"outbox-{delivery.id}"
        channel_id, ts, fresh = self._post_once(
            channel, key, text, alerts, delivery.attempts > 1, delivery.alert_id
        )
        self._remember(channel_id, ts, text, [a.id for a in alerts])
        again = "" if fresh else " (posted by an earlier attempt)"
        return SendResult("sent", f"slack #{name} message {ts}{again}", f"{channel_id}:{ts}")

    # incident channels --------------------------------------------------------------------------

    def _incident_channel(self, alert_id: int | None) -> SlackIncidentChannelRow | None:
        if alert_id is None:
            return None
        with self._session() as session:
            return session.get(SlackIncidentChannelRow, alert_id)

    def _create(self, name: str) -> str:
        """The channel's ID: created now, or found after `name_taken` (created before)."""
        try:
            answer = self.client.conversations_create(name=name, is_private=False)
            return str(answer["channel"]["id"])
        except SlackApiError as exc:
            if error_code(exc) != "name_taken":
                raise
        found = self._find_channel(name)
        if found is None:
            # Taken by a channel the bot cannot see (private): never post elsewhere.
            raise SlackApiError(
                f"#{name} exists but is not visible to the app",
                {"ok": False, "error": "name_taken"},
            )
        return found

    def _find_channel(self, name: str) -> str | None:
        cursor = None
        while True:
            page = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=False,
                limit=200,
                cursor=cursor,
            )
            for channel in page.get("channels") or []:
                if channel.get("name") == name:
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    def _invite(self, channel: str, people: Sequence[str]) -> str:
        """Invite roster people not yet in the channel; returns what happened, for the
        timeline (people Slack does not know are named, not fatal)."""
        users: dict[str, str] = {}
        unknown: list[str] = []
        for person_id in people:
            person = self.app.config.person(person_id)
            user = self.app.directory.user_of(person) if person else None
            if user is None:
                unknown.append(person_id)
            else:
                users[user] = person_id
        members = set(self.client.conversations_members(channel=channel, limit=1000)["members"])
        new = [u for u in users if u not in members]
        if new:
            try:
                self.client.conversations_invite(channel=channel, users=",".join(new))
            except SlackApiError as exc:
                if error_code(exc) != "already_in_channel":
                    raise
        parts = []
        if new:
            parts.append(f"invited {', '.join(users[u] for u in new)}")
        if len(new) < len(users):
            parts.append(f"already in: {', '.join(users[u] for u in users if u not in new)}")
        if unknown:
            parts.append(f"not found in Slack: {', '.join(unknown)}")
        return "; ".join(parts) or "nobody to invite"

    def _open_incident(self, delivery: Delivery, message: Message) -> SendResult:
        row = self._incident_channel(delivery.alert_id)
        if row is None or delivery.alert_id is None:
            return SendResult("failed", "no incident channel recorded for this alert")
        alert_id = delivery.alert_id
        name = row.name
        channel = row.channel_id
        if channel is None:
            channel = self._create(name)
            with self._session() as session:
                stored = session.get(SlackIncidentChannelRow, alert_id, with_for_update=True)
                if stored is not None:
                    stored.channel_id = channel
        invited = self._invite(channel, delivery.payload.get("people") or [])
        topic = str(delivery.payload.get("topic") or "")
        if topic:
            self.client.conversations_setTopic(channel=channel, topic=topic)
        pinned = row.pinned_ts
        if pinned is None:
            with self._session() as session:
                alerts = self._alerts(session, [alert_id])
            text = str(delivery.payload.get("text") or message.body)
            key = f"incident-{alert_id}"
            _, pinned, _ = self._post_once(channel, key, text, alerts, True, alert_id)
            self._remember(channel, pinned, text, [alert_id])
            try:
                self.client.pins_add(channel=channel, timestamp=pinned)
            except SlackApiError as exc:
                if error_code(exc) != "already_pinned":
                    raise
            with self._session() as session:
                stored = session.get(SlackIncidentChannelRow, alert_id, with_for_update=True)
                if stored is not None:
                    stored.pinned_ts, stored.opened_at = pinned, self._now()
        return SendResult(
            "sent", f"slack #{name} ({channel}): {invited}; topic set; notice pinned", channel
        )

    def _ready_channel(self, delivery: Delivery) -> tuple[SlackIncidentChannelRow | None, str]:
        row = self._incident_channel(delivery.alert_id)
        if row is None:
            return None, "no incident channel recorded for this alert"
        if row.channel_id is None:
            return None, f"#{row.name} is not created yet"
        return row, ""

    def _incident_post(self, delivery: Delivery, message: Message) -> SendResult:
        row, why = self._ready_channel(delivery)
        if row is None or row.channel_id is None:
            return SendResult("retry", why)
        text = str(delivery.payload.get("text") or message.body)
        _, ts, fresh = self._post_once(
            row.channel_id, f"outbox-{delivery.id}", text, [], delivery.attempts > 1, None
        )
        again = "" if fresh else " (posted by an earlier attempt)"
        detail = f"slack #{row.name} message {ts}{again}"
        return SendResult("sent", detail, f"{row.channel_id}:{ts}")

    def _invite_op(self, delivery: Delivery, message: Message) -> SendResult:
        row, why = self._ready_channel(delivery)
        if row is None or row.channel_id is None:
            return SendResult("retry", why)
        if row.archived_at is not None:
            return SendResult("sent", f"#{row.name} is archived: nobody invited")
        done = self._invite(row.channel_id, delivery.payload.get("people") or [])
        return SendResult("sent", f"slack #{row.name}: {done}", row.channel_id)

    def _archive(self, delivery: Delivery, message: Message) -> SendResult:
        row, why = self._ready_channel(delivery)
        if row is None or row.channel_id is None:
            return SendResult("sent", f"nothing to archive: {why}")
        text = str(delivery.payload.get("text") or "")
        if text:
            self._post_once(row.channel_id, f"outbox-{delivery.id}", text, [], True, None)
        if not self.app.settings.archive_after_postmortem:
            return SendResult("sent", f"#{row.name}: post-mortem posted; kept (no archiving)")
        try:
            self.client.conversations_archive(channel=row.channel_id)
        except SlackApiError as exc:
            if error_code(exc) != "already_archived":
                raise
        with self._session() as session:
            stored = session.get(SlackIncidentChannelRow, row.alert_id, with_for_update=True)
            if stored is not None:
                stored.archived_at = self._now()
        return SendResult("sent", f"slack #{row.name} archived", row.channel_id)

    # updates in place ---------------------------------------------------------------------

    def _update(self, delivery: Delivery, message: Message) -> SendResult:
        alert_id = delivery.alert_id
        if alert_id is None:
            return SendResult("failed", "an update names no alert")
        with self._session() as session:
            shown = list(
                session.execute(
                    select(SlackMessageRow.channel, SlackMessageRow.ts).where(
                        SlackMessageRow.alert_id == alert_id
                    )
                ).all()
            )
            if not shown:
                in_flight = session.scalar(
                    select(OutboxRow.id).where(
                        OutboxRow.alert_id == alert_id,
                        OutboxRow.method == ops.METHOD,
                        OutboxRow.status == "sending",
                        OutboxRow.id != delivery.id,
                    )
                )
                if in_flight is not None:
                    return SendResult("retry", f"the Slack post of #{alert_id} is still in flight")
                return SendResult("sent", "no Slack message shows this alert")
            renders = []
            for channel, ts in shown:
                rows = list(
                    session.scalars(
                        select(SlackMessageRow)
                        .where(SlackMessageRow.channel == channel, SlackMessageRow.ts == ts)
                        .order_by(SlackMessageRow.alert_id)
                    )
                )
                alerts = self._alerts(session, [r.alert_id for r in rows])
                renders.append((channel, ts, rows[0].text, alerts))
        updated, gone = 0, 0
        for channel, ts, text, alerts in renders:
            try:
                self.client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=slack_blocks.fallback_text(text, alerts),
                    blocks=slack_blocks.message_blocks(text, alerts, self._incidents()),
                )
                updated += 1
            except SlackApiError as exc:
                if error_code(exc) != "message_not_found":
                    raise
                gone += 1  # deleted in Slack: nothing to keep current
        with self._session() as session:
            for row in session.scalars(
                select(SlackMessageRow).where(SlackMessageRow.alert_id == alert_id)
            ):
                row.updated_at = self._now()
        detail = f"slack: {updated} message(s) of #{alert_id} updated"
        if gone:
            detail += f", {gone} deleted in Slack"
        return SendResult("sent", detail)
