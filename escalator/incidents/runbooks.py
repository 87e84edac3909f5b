"""Runbooks: an alertname's runbook URL and the immediate actions the seed lists for it.

Config `runbooks:` maps alert names to them. Pages and emails carry the link (and emails
the immediate actions), `escalator runbook NAME` prints them. A page is rendered by the
sender from the alert row and the runbooks the daemon hands the sender (its config's):
no process-wide state, so a drain before the first tick after a restart still carries
the runbook lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from escalator.config import Config, Runbook


def find(runbooks: Mapping[str, Runbook], alertname: str) -> Runbook | None:
    """Exact name first, then case-insensitively (people type `credlinkservicedown`)."""
    if alertname in runbooks:
        return runbooks[alertname]
    lowered = {name.lower(): rb for name, rb in runbooks.items()}
    return lowered.get(alertname.lower())


def page_lines(
    runbooks: Mapping[str, Runbook], alertname: str, annotations: Mapping[str, Any], method: str
) -> list[str]:
    """Lines a page adds for its runbook: the link (unless the alert's own `runbook_url`
    annotation already gave one) and, where there is room (not SMS or voice), the
    immediate actions."""
    runbook = find(runbooks, alertname)
    if runbook is None:
        return []
    lines = []
    if not annotations.get("runbook_url"):
        lines.append(f"Runbook: {runbook.url}")
    if method not in ("sms", "voice") and runbook.immediate_actions:
        lines.append("Immediate actions:")
        lines.extend(f"  {i}. {a}" for i, a in enumerate(runbook.immediate_actions, 1))
    return lines


def describe(config: Config, alertname: str) -> dict[str, Any] | None:
    """The runbook as data, for `escalator runbook NAME -o json`."""
    runbook = find(config.runbooks, alertname)
    if runbook is None:
        return None
    name = next((n for n in config.runbooks if n.lower() == alertname.lower()), alertname)
    return {
        "alertname": name,
        "title": runbook.title,
        "url": runbook.url,
        "impact": runbook.impact,
        "immediate_actions": runbook.immediate_actions,
    }
