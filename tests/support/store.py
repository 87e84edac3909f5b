"""Reading the store's record of a run: what was opened, paged and queued, per alert level.

Queried with plain SQL-expression reads on a short-lived engine, so the test's view of the
database is independent of the processes under test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select

from escalator.store.db import make_engine, session_factory, transaction
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow


@dataclass
class Record:
    alerts: dict[str, int]  # fingerprint -> how many alert rows carry it
    finished: int  # alerts at their last level with nothing more due
    paged: Counter[tuple[int, int]]  # (alert id, level) -> 'paged' timeline rows
    outbox: Counter[tuple[int, int]]  # (alert id, level) -> outbox rows
    outbox_status: Counter[str]  # of escalation pages only (rows with a level)


def read_record(database_url: str, last_level: int) -> Record:
    engine = make_engine(database_url)
    try:
        with transaction(session_factory(engine)) as session:
            alerts = dict(
                session.execute(
                    select(AlertRow.fingerprint, func.count()).group_by(AlertRow.fingerprint)
                ).all()
            )
            finished = session.scalar(
                select(func.count()).where(
                    AlertRow.level == last_level, AlertRow.next_action_at.is_(None)
                )
            )
            paged = Counter(
                {
                    (a, lvl): n
                    for a, lvl, n in session.execute(
                        select(TimelineRow.alert_id, TimelineRow.level, func.count())
                        .where(TimelineRow.kind == "paged")
                        .group_by(TimelineRow.alert_id, TimelineRow.level)
                    )
                }
            )
            outbox = Counter(
                {
                    (a, lvl): n
                    for a, lvl, n in session.execute(
                        select(OutboxRow.alert_id, OutboxRow.level, func.count())
                        .where(OutboxRow.level.is_not(None))
                        .group_by(OutboxRow.alert_id, OutboxRow.level)
                    )
                }
            )
            status = Counter(
                dict(
                    session.execute(
                        select(OutboxRow.status, func.count())
                        .where(OutboxRow.level.is_not(None))
                        .group_by(OutboxRow.status)
                    ).all()
                )
            )
    finally:
        engine.dispose()
    return Record(alerts, int(finished or 0), paged, outbox, status)


def alert_ids(database_url: str) -> list[int]:
    engine = make_engine(database_url)
    try:
        with transaction(session_factory(engine)) as session:
            return list(session.scalars(select(AlertRow.id).order_by(AlertRow.id)))
    finally:
        engine.dispose()
