"""Set-based lookups of a whole webhook body, bounded in statement size on both backends.

A `(fingerprint, starts_at) IN ((..), (..), ...)` list of 7,500 pairs exceeds
PostgreSQL's parser stack (`stack depth limit exceeded`, a 503 that never heals), and
SQLite caps bound parameters. On PostgreSQL the keys travel as two arrays joined with
`unnest` (two parameters whatever the size); on SQLite the list is cut into chunks.

`lock_occurrences` is what keeps HA duplicates from deadlocking on PostgreSQL: every
replica that ingests the same (or an overlapping) group takes transaction-scoped
advisory locks on the body's fingerprints and identities, all in one sorted order,
before touching any row. Two posts sharing an alert then run one after the other, and
posts sharing nothing never wait. (SQLite's `BEGIN IMMEDIATE` serialises writers anyway.)
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, DateTime, Select, Text, and_, any_, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

_CHUNK = 400  # keys per IN list on SQLite (two parameters each)

Key = tuple[str, datetime]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def occurrences(
    session: Session,
    columns: Sequence[Any],
    fingerprint: Column[Any],
    starts_at: Column[Any],
    keys: Sequence[Key],
) -> list[Any]:
    """Rows (of `columns`) whose (fingerprint, starts_at) is one of `keys`."""
    if not keys:
        return []
    if _is_pg(session):
        wanted = (
            func.unnest(
                bindparam("fps", [k[0] for k in keys], type_=ARRAY(Text)),
                bindparam("sts", [_naive(k[1]) for k in keys], type_=ARRAY(DateTime)),
            )
            .table_valued("fp", "st")
            .render_derived()
        )
        query = select(*columns).join_from(
            fingerprint.table,
            wanted,
            and_(fingerprint == wanted.c.fp, starts_at == wanted.c.st),
        )
        return list(session.execute(query))
    # SQLite plans a row-value IN as a scan of the whole index (O(table) per body, so ingest
    # slows as alerts accumulate); a plain IN on the index's first column is a seek per key.
    wanted_keys = set(keys)
    rows: list[Any] = []
    query = _by_fingerprint(tuple(columns), fingerprint, starts_at)
    for chunk in _chunks(sorted({k[0] for k in wanted_keys})):
        found = session.execute(query, {"fps": chunk})
        rows.extend(row[:-2] for row in found if tuple(row[-2:]) in wanted_keys)
    return rows


# Built once: an expanding IN parameter is one bind whatever the list, where `in_(list)`
# coerces every value into the statement on every call.
# Columns are fine cache keys: SQLAlchemy hashes them by identity, and the callers pass
# the same table's column objects every time.
@lru_cache(maxsize=32)
def _by_fingerprint(columns: tuple[Any, ...], fingerprint: Column[Any],
                    starts_at: Column[Any]) -> Select[Any]:  # fmt: skip
    return select(*columns, fingerprint, starts_at).where(
        fingerprint.in_(bindparam("fps", expanding=True))
    )


@lru_cache(maxsize=32)
def _open_of(identity: Column[Any], status: Column[Any]) -> Select[Any]:
    return select(identity).where(
        identity.in_(bindparam("ids", expanding=True)), status != "resolved"
    )


def open_identities(session: Session, identity: Column[Any], status: Column[Any],
                    identities: Iterable[str]) -> set[str]:  # fmt: skip
    """Which of `identities` an open (not resolved) alert has."""
    wanted = sorted(set(identities))
    if not wanted:
        return set()
    if _is_pg(session):
        found = session.scalars(
            select(identity).where(
                identity == any_(bindparam("ids", wanted, type_=ARRAY(Text))),
                status != "resolved",
            )
        )
        return set(found)
    result: set[str] = set()
    query = _open_of(identity, status)
    for chunk in _chunks(wanted):
        result.update(session.scalars(query, {"ids": chunk}))
    return result


def _lock_key(namespace: str, value: str) -> int:
    digest = hashlib.blake2b(f"{namespace}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# A body with more keys than this takes the ingest lock alone (exclusively) instead of one
# lock per key: PostgreSQL's lock table is shared and small (max_locks_per_transaction x
# max_connections, 6,400 by default), and 15,000 advisory locks exhaust it.
_MAX_KEY_LOCKS = 256
_INGEST_LOCK = _lock_key("ingest", "")


def lock_occurrences(session: Session, fingerprints: Iterable[str],
                     identities: Iterable[str]) -> None:  # fmt: skip
    """Serialise this transaction with every other ingest sharing a fingerprint or an
    identity (PostgreSQL; a no-op on SQLite).

    Every ingest first takes the ingest lock, shared for an ordinary body (so bodies with
    nothing in common run side by side) and exclusive for a huge one, then its key locks
    in sorted order: one order for all, so no cycle can form. One statement.
    """
    if not _is_pg(session):
        return
    keys = sorted(
        {_lock_key("f", f) for f in fingerprints} | {_lock_key("i", i) for i in identities}
    )
    if len(keys) > _MAX_KEY_LOCKS:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _INGEST_LOCK})
        return
    # Two statements: within one, PostgreSQL would evaluate the shared lock after the keys.
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _INGEST_LOCK})
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS sorted_keys"
        ),
        {"keys": keys},
    )


class FifoTurns:
    """First come, first served among this process's webhook transactions on SQLite.

    SQLite has one writer at a time and its busy handler polls (sleeps of up to 100 ms
    between tries): a post that has waited may lose the lock again and again to posts
    arriving later, so in a storm of four concurrent posts one of them could wait past
    Alertmanager's timeout. Queuing the posts here, in arrival order, leaves one of them at
    a time contending with the engine and the sender. (PostgreSQL needs none of this:
    bodies run concurrently, serialised only where they share alerts.)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()
