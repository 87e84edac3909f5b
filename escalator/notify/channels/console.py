"""The embedded default channel: one line per page on standard output.

Used for every method that has no provider configured, so a fresh install shows exactly
who would have been paged, how, and how they would acknowledge.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.text import escape, escape_lines


def who(delivery: Delivery) -> str:
    """`alice`, `#incidents`, `product@credlink.example`; several for a notice printed once
    for all its console recipients (escalator.incidents.notices)."""
    names = delivery.payload.get("recipients")
    if isinstance(names, list) and names:
        return ", ".join(str(n) for n in names)
    if delivery.recipient_kind == "channel":
        return f"#{delivery.recipient}"
    return delivery.recipient


class ConsoleChannel:
    method = "console"

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        kind = "PAGE" if delivery.urgency == "page" else "NOTIFY"
        at = (message.at or datetime.now(UTC)).astimezone(UTC)
        via = delivery.payload.get("via", "")
        level = "" if delivery.level is None else f" level {delivery.level}"
        # Every value escaped: a line break in a summary cannot forge a second
        # `[escalator] PAGE` line, an escape sequence in an alert name cannot reach the terminal.
        # Text rendered for the console (notices) keeps its own line structure: its values
        # were escaped as the template interpolated them (incidents/templates _finalize).
        # Text rendered for another method (the console standing in for it) is one line.
        title = (
            escape_lines(message.title) if delivery.method == "console" else escape(message.title)
        )
        line = (
            f"[escalator] {at:%Y-%m-%dT%H:%M:%SZ} {kind} {escape(who(delivery))}"
            f"{f' ({escape(via)})' if via else ''}{level}: {title}"
        )
        if message.ack_hint:
            line += f" | {escape(message.ack_hint)}"
        stream = self._stream or sys.stdout
        print(line, file=stream, flush=True)
        return SendResult("sent", "printed to console")
