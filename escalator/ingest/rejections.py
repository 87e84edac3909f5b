"""Alerts of a webhook body that cannot be stored: refused one by one, never silently.

Alertmanager forgets a notification on 2xx and retries a 5xx forever (and a 4xx never),
so one malformed alert must neither sink its whole group (a 4xx loses the good alerts,
a 5xx is a retry loop that never succeeds) nor vanish. Each refused entry becomes a
firing alert of its own, `EscalatorIngestRejected`, routed and paged like any other
alert by the config (its severity is the refused alert's when it had a readable one,
else `critical`: an alert nobody can read may be the one that matters). The reason is in
its annotations and the body's answer lists it under `rejected`.

The rejection's occurrence is derived from what identifies the refused entry
(fingerprint and startsAt as sent, or its labels when it had no fingerprint), so
Alertmanager's resends of the same group update the same rejection instead of opening
a new one every `group_interval`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

REJECTED_ALERTNAME = "EscalatorIngestRejected"
# Every rejection occurrence starts here: its identity is in the fingerprint (a digest of
# the refused entry), and a constant start keeps resends of the same body idempotent.
REJECTED_STARTS_AT = datetime(1970, 1, 1, tzinfo=UTC)
# The one bound on a label: PostgreSQL's btree index on (severity, status) refuses entries
# over ~2,700 bytes, so a longer severity is refused per alert, alike on both backends.
SEVERITY_MAX_CHARS = 200
_SHOWN = 500  # characters of the reason and of the refused entry kept in annotations


@dataclass(frozen=True)
class RejectedAlert:
    """One entry of `alerts` that failed validation, and why."""

    index: int
    fingerprint: str | None
    alertname: str | None
    severity: str | None
    reason: str
    digest: str
    entry: str

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "fingerprint": self.fingerprint,
            "alertname": self.alertname,
            "reason": self.reason,
            "rejection": rejection_fingerprint(self.digest),
        }


def reasons(exc: ValidationError) -> str:
    """What pydantic found wrong with one entry, as one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'alert'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    )


def refused(index: int, raw: Any, reason: str) -> RejectedAlert:
    """Describe a refused entry from what could be read of it."""
    if hasattr(raw, "model_dump"):  # an entry given as a model (not from JSON)
        raw = raw.model_dump(mode="json")
    entry = raw if isinstance(raw, dict) else {}
    found = entry.get("labels")
    labels: dict[str, Any] = found if isinstance(found, dict) else {}
    fingerprint = entry.get("fingerprint")
    identity = [
        fingerprint if isinstance(fingerprint, str) else None,
        entry.get("startsAt"),
        None if isinstance(fingerprint, str) and fingerprint else labels,
        None if entry else raw,
    ]
    digest = hashlib.sha256(
        json.dumps(identity, sort_keys=True, default=str).encode(errors="replace")
    ).hexdigest()
    severity = labels.get("severity")
    alertname = labels.get("alertname")
    return RejectedAlert(
        index=index,
        fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        alertname=alertname if isinstance(alertname, str) else None,
        severity=(
            severity
            if isinstance(severity, str) and 0 < len(severity) <= SEVERITY_MAX_CHARS
            else None
        ),
        reason=reason[:_SHOWN],
        digest=digest,
        entry=json.dumps(raw, sort_keys=True, default=str)[:_SHOWN],
    )


def rejection_fingerprint(digest: str) -> str:
    return f"rejected-{digest[:32]}"


def rejection_fields(rejected: RejectedAlert) -> dict[str, Any]:
    """The fields of the `EscalatorIngestRejected` alert standing for a refused entry."""
    return {
        "status": "firing",
        "labels": {
            "alertname": REJECTED_ALERTNAME,
            "severity": rejected.severity or "critical",
            "rejected": rejected.digest[:16],
        },
        "annotations": {
            "summary": (
                f"escalator could not store an alert from Alertmanager "
                f"({rejected.alertname or 'no readable alertname'})"
            ),
            "description": f"refused: {rejected.reason}",
            "refused_fingerprint": rejected.fingerprint or "",
            "refused_alertname": rejected.alertname or "",
            "refused_entry": rejected.entry,
        },
        "startsAt": REJECTED_STARTS_AT,
        "fingerprint": rejection_fingerprint(rejected.digest),
    }
