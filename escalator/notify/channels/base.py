"""The sender's contract with every channel: a Delivery in, a SendResult out.

A channel only talks to its provider. Claiming, leasing, retrying, falling back and
recording the timeline belong to the sender, so a new channel is one small module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Delivery:
    """One claimed outbox row, detached from the session so the send runs outside it."""

    id: int
    alert_id: int | None
    recipient_kind: str
    recipient: str
    method: str
    address: str | None
    level: int | None
    urgency: str
    reason: str
    attempts: int
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """What a page says, rendered once per delivery from the alert as it is now."""

    alert_id: int | None
    title: str  # one line: severity, alert name, id
    body: str  # a few lines: summary, labels, links
    ack_hint: str  # how to acknowledge, for this method
    severity: str | None = None
    # Every alert this message is about: one, or several when pages were bundled.
    alert_ids: tuple[int, ...] = ()
    # When it was rendered for sending (the daemon's clock): the console prints it.
    at: datetime | None = None


Outcome = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class SendResult:
    """`retry`: try again later with backoff; `failed`: this method will never work for it."""

    outcome: Outcome
    detail: str = ""
    provider_id: str | None = None


class Channel(Protocol):
    method: str

    def send(self, delivery: Delivery, message: Message) -> SendResult: ...
