"""Runbooks: an alertname's runbook URL and the immediate actions the seed lists for it.

Config `runbooks:` maps alert names to them. Pages and emails carry the link (and emails
the immediate actions), `escalator runbook NAME` prints them. The page renderer
(escalator.notify.message.Pages) is handed the daemon's runbooks when it is built (no
process-wide state), so a drain before the first tick after a restart still carries the
runbook too.
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
