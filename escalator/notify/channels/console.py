"""The embedded default channel: one line per page on standard output.

Used for every method that has no provider configured, so a fresh install shows exactly
who would have been paged, how, and how they would acknowledge.
"""

from __future__ import annotations

import sys
from typing import TextIO

from escalator.notify.channels.base import Delivery, Message, SendResult


class ConsoleChannel:
    method = "console"

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        kind = "PAGE" if delivery.urgency == "page" else "NOTIFY"
        who = (
            delivery.recipient if delivery.recipient_kind == "person" else f"#{delivery.recipient}"
        )
        via = delivery.payload.get("via", "")
        level = "" if delivery.level is None else f" level {delivery.level}"
        line = (
            f"[escalator] {kind} {who}{f' ({via})' if via else ''}{level}: {message.title}"
            f" | {message.ack_hint}"
        )
        stream = self._stream or sys.stdout
        print(line, file=stream, flush=True)
        return SendResult("sent", "printed to console")
