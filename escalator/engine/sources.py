"""The engine's source step, run first in every tick: let alerts whose maintenance window
ended escalate (so the same tick pages their level 0), and open an alert for each
heartbeat gone silent. Both are queries on the store, so a restart or a second replica
neither loses nor repeats one."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from escalator.config import Config
from escalator.escalation.paging import Paging
from escalator.escalation.policies import PolicyCache
from escalator.ingest.heartbeat_store import check_overdue
from escalator.maintenance.store import release_due

log = logging.getLogger("escalator.engine")


def run_sources(
    session: Session,
    config: Config,
    started_at: datetime,
    paging: Paging,
    policies: PolicyCache,
    now: datetime,
) -> int:
    """In the caller's transaction; returns how many alerts were released or opened."""
    released = release_due(session, config, policies, now)
    opened = check_overdue(session, config, started_at, paging, policies, now)
    if released:
        log.info("maintenance over: %d alert(s) escalate now", len(released))
    return len(released) + len(opened)
