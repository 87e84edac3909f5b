"""Slack work as outbox rows: the new outbox kinds and the hooks that queue them.

Everything escalator does in Slack besides posting a page is one of these kinds, queued in
the same transaction as the change that calls for it and carried out by the Slack channel
(escalator.notify.channels.slack) in the sender's slack lane, so it is retried with backoff, leased
(one replica at a time), sent at least once, and written to be idempotent against Slack:

- `open_incident`   create #incident-YYYYMMDD-HHMM-<id> (or find it after `name_taken`),
                    invite the on-call, the commander and `channels.slack.invite`, set the
                    topic (alert and runbook), post and pin the initial notice;
- `incident_post`   a status update, reminder, stakeholder update, the resolution or a
                    post-mortem reminder, posted in the incident channel;
- `invite`          the commander, once someone acknowledges;
- `update`          re-render every message showing an alert after it was acknowledged,
                    escalated, snoozed or resolved (chat.update);
- `archive`         once the post-mortem is linked (`channels.slack.archive_after_postmortem`).

Rows carry `payload["slack_op"]` and a `text` (so the sender never bundles them, and a
console fallback prints something a person can act on); `condition` is NULL, so an ack
never cancels them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from escalator.escalation.machine import Decision, Note, Page
from escalator.notify import slack_blocks
from escalator.store.slack_tables import SlackIncidentChannelRow, SlackMessageRow
from escalator.store.tables import AlertRow, IncidentRow, OutboxRow

if TYPE_CHECKING:
    from escalator.escalation.paging import Paging
    from escalator.incidents.notices import Notifier

METHOD = "slack"
OP = "slack_op"
OPEN_INCIDENT = "open_incident"
INCIDENT_POST = "incident_post"
INVITE = "invite"
UPDATE = "update"
ARCHIVE = "archive"
# Incident notices that are also posted in the incident channel.
CHANNEL_KINDS = frozenset(
    {"status_update", "update_reminder", "stakeholder_update", "resolution", "postmortem_reminder"}
)
# What changes a card: these notes, and pages of a new level.
_CHANGES = frozenset(
    {"acknowledged", "resolved", "snoozed", "escalated_manually", "ack_expired", "ack_renewed"}
)


def add_op(
    session: Session,
    alert_id: int | None,
    op: str,
    recipient: str,
    text: str,
    now: datetime,
    **payload: Any,
) -> None:
    session.add(
        OutboxRow(
            alert_id=alert_id,
            recipient_kind="channel",
            recipient=recipient,
            method=METHOD,
            address=recipient,
            level=None,
            urgency="notify",
            condition=None,
            reason=f"slack {op.replace('_', ' ')}",
            payload={OP: op, "text": text, **payload},
            status="pending",
            due_at=now,
            attempts=0,
            created_at=now,
        )
    )


# Incident notices (called by incidents.notices.Notifier.queue) -------------------------------


def incident_notice(
    session: Session, n: Notifier, alert_id: int | None, kind: str, ctx: dict[str, Any]
) -> int:
    """Queue the incident channel's share of one notice; returns how many rows."""
    settings = n.config.channels.slack
    if (
        alert_id is None
        or settings is None
        or not settings.incident_channels
        or METHOD not in n.paging.methods
    ):
        return 0
    if kind == "initial":
        return _open_incident(session, n, alert_id, ctx)
    if kind not in CHANNEL_KINDS:
        return 0
    channel = session.get(SlackIncidentChannelRow, alert_id)
    if channel is None:
        return 0  # the incident opened before Slack was configured
    text = n.templates.render(kind, "chat", {**ctx, "ack": n.ack_hint(kind, "chat", alert_id)})
    add_op(session, alert_id, INCIDENT_POST, f"#{channel.name}", text, n.now, kind=kind)
    return 1


def _open_incident(session: Session, n: Notifier, alert_id: int, ctx: dict[str, Any]) -> int:
    from escalator.incidents.notices import runbook_for

    incident = session.get(IncidentRow, alert_id)
    alert = session.get(AlertRow, alert_id)
    if incident is None or alert is None or session.get(SlackIncidentChannelRow, alert_id):  # type: ignore[arg-type]
        return 0
    settings = n.config.channels.slack
    assert settings is not None
    name = slack_blocks.channel_name(incident.channel)
    session.add(SlackIncidentChannelRow(alert_id=alert_id, name=name, created_at=n.now))
    people: list[str] = []
    policy = n.config.policies.get(alert.policy_name)
    oncall = policy.steps[0].targets if policy is not None else []
    for recipient in n.expand([*oncall, *settings.invite]):
        if recipient.kind == "person" and recipient.id not in people:
            people.append(recipient.id)
    if (
        incident.commander
        and n.config.person(incident.commander)
        and (incident.commander not in people)
    ):
        people.append(incident.commander)
    runbook = runbook_for(n.config, alert.alertname)
    url = alert.annotations.get("runbook_url") or (runbook.url if runbook else None)
    summary = alert.annotations.get("summary", "")
    hint = n.ack_hint("initial", "chat", alert_id)
    text = n.templates.render("initial", "chat", {**ctx, "ack": hint})
    add_op(
        session,
        alert_id,
        OPEN_INCIDENT,
        f"#{name}",
        text,
        n.now,
        name=name,
        people=people,
        topic=slack_blocks.topic(alert.severity, alert.alertname, summary, url),
        subject=f"Slack incident channel #{name}",
    )
    return 1


# Decisions (called by incidents.store.record_decision, every state change's path) -----------


def on_decision(
    session: Session, row: AlertRow, decision: Decision, paging: Paging, now: datetime
) -> None:
    """Queue an in-place update of the alert's Slack messages, and invite a new commander.

    A process that knows its configuration has no Slack channel (the daemon without
    `channels.slack`) skips the lookups: it is the engine's hot path. One that does not
    know (a CLI ack without a config file) looks, so an ack typed anywhere updates Slack.
    """
    if paging.config is not None and METHOD not in paging.methods:
        return
    changed = any(
        (isinstance(e, Note) and e.kind in _CHANGES) or isinstance(e, Page)
        for e in decision.effects
    )
    if not changed:
        return
    if _has_messages(session, row.id) and not _pending(session, row.id, UPDATE):
        add_op(session, row.id, UPDATE, "messages", f"update Slack messages of #{row.id}", now)
    for effect in decision.effects:
        if isinstance(effect, Note) and effect.kind == "acknowledged" and effect.actor:
            channel = session.get(SlackIncidentChannelRow, row.id)
            if channel is not None and channel.archived_at is None:
                add_op(
                    session,
                    row.id,
                    INVITE,
                    f"#{channel.name}",
                    f"invite {effect.actor} to #{channel.name}",
                    now,
                    people=[effect.actor],
                )


def _has_messages(session: Session, alert_id: int) -> bool:
    """A Slack message shows this alert, or a page to Slack is being sent right now."""
    posted = session.scalar(
        select(SlackMessageRow.id).where(SlackMessageRow.alert_id == alert_id).limit(1)
    )
    if posted is not None:
        return True
    sending = session.scalar(
        select(OutboxRow.id)
        .where(
            OutboxRow.alert_id == alert_id,
            OutboxRow.status == "sending",
            OutboxRow.method == METHOD,
        )
        .limit(1)
    )
    return sending is not None


def _pending(session: Session, alert_id: int, op: str) -> bool:
    rows = session.scalars(
        select(OutboxRow.payload).where(
            OutboxRow.alert_id == alert_id,
            OutboxRow.status == "pending",
            OutboxRow.method == METHOD,
        )
    )
    return any((p or {}).get(OP) == op for p in rows)


# Post-mortems (called by services.incidents.link_postmortem) --------------------------------------


def postmortem_linked(session: Session, alert_id: int, url: str, now: datetime) -> None:
    channel = session.get(SlackIncidentChannelRow, alert_id)
    if channel is None or channel.archived_at is not None:
        return
    add_op(
        session,
        alert_id,
        ARCHIVE,
        f"#{channel.name}",
        f"Post-mortem linked: {url}. This incident is closed.",
        now,
        url=url,
    )
