"""Contact routing: the ways to reach a recipient for an urgency (pure; config in, rows out)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from escalator.roster.oncall import Recipient

if TYPE_CHECKING:
    from escalator.config import Config, Urgency


def deliveries(
    config: Config, methods: frozenset[str], recipient: Recipient, urgency: Urgency
) -> list[tuple[str, str | None, timedelta]]:
    """(method, address, delay) for each way to reach a recipient; console when none works.

    A channel target goes to the Slack app channel mapped under its name, else to the chat
    webhook configured under its name, else to the generic JSON webhook of that name, else
    to the console. A person gets one row per contact rule
    for the urgency whose method has a channel and an address (the sender bundles and
    rate-limits them, and falls back along this order when one fails).
    """
    if recipient.kind == "channel":
        settings = config.channels
        if "slack" in methods and settings.slack and recipient.id in settings.slack.channels:
            return [("slack", recipient.id, timedelta(0))]
        if "chat" in methods and settings.chat and recipient.id in settings.chat.webhooks:
            return [("chat", recipient.id, timedelta(0))]
        if "webhook" in methods and settings.webhook and recipient.id in settings.webhook.endpoints:
            return [("webhook", recipient.id, timedelta(0))]
        return [("console", f"#{recipient.id}", timedelta(0))]
    person = config.person(recipient.id)
    out: list[tuple[str, str | None, timedelta]] = []
    if person is not None:
        for rule in person.rules.get(urgency, []):
            address = person.address(rule.method)
            if rule.method in methods and (address or rule.method == "console"):
                out.append((rule.method, address, rule.after))
    if not out and "console" in methods:
        out.append(("console", None, timedelta(0)))
    return out
