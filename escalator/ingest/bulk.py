"""Inserting a webhook body's rows at what the store costs, not what the ORM layers cost.

Profiles of sustained ingest (bench/ingest.py under py-spy) put most of a new alert's
CPU outside the database: SQLAlchemy processing every bound parameter of an executemany
one by one (each datetime through the UTC TypeDecorator, each dict through JSON), and on
PostgreSQL psycopg re-parsing the multi-row `INSERT ... VALUES (...), (...) RETURNING`
that SQLAlchemy's insertmanyvalues builds (its text differs with the row count and is too
long for psycopg's query cache). Here:

- each column's bind processor (the same one SQLAlchemy would use, so the stored bytes are
  identical) runs once per distinct value: a body's rows share `now`, their startsAt, the
  same payload dict of a page;
- PostgreSQL gets one statement per table whatever the row count, its text constant
  (cached, prepared): the rows as one JSON document (`json.dumps` of the whole list, in C)
  read with `json_to_recordset` (column arrays were tried first: psycopg's text dumper
  escapes each array element in Python, and that cost more than the insert);
- SQLite gets the DB-API's executemany (a C loop), or, when ids are wanted back, one
  multi-row `VALUES ... RETURNING` per chunk.

Statements are built once per (table, columns, options) and kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import JSON, FromClause, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from escalator.store.tables import UTCDateTime

_SQLITE_MAX_PARAMS = 30_000  # below SQLite's 32,766 bound parameters per statement


def insert_rows(
    session: Session,
    table: FromClause,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple[int, tuple[Any, ...]]]:
    """Insert `rows` (all with the same keys) into `table` in the session's transaction.

    `conflict`: ON CONFLICT (those columns) DO NOTHING. `returning`: columns to return, as
    (index of the input row, values); the input row is found by the returned columns that
    were inserted (e.g. `fingerprint, starts_at` for the alerts' `id`). Raw values: a
    returned datetime is as stored (naive UTC), not processed back.
    """
    if not rows:
        return []
    assert isinstance(table, Table), table  # a mapped class's __table__ (typed FromClause)
    columns = tuple(rows[0])
    conn = session.connection()
    dialect = conn.dialect
    params = _columns(dialect, table, columns, rows)
    # A column NULL in every row is left out when the table gives it no default of its
    # own: it is NULL either way, and every bound value costs (a new alert's row has a
    # dozen empty columns: ack, resolution, lease, provider id...).
    kept = [
        c for c, name in enumerate(columns)
        if name in conflict or params[c].count(None) < len(rows)
        or table.c[name].server_default is not None
    ]  # fmt: skip
    if kept and len(kept) < len(columns):
        columns = tuple(columns[c] for c in kept)
        params = [params[c] for c in kept]
    pg = dialect.name == "postgresql"
    if pg:
        sql = _pg_sql(dialect, table, columns, tuple(conflict), tuple(returning))
        document = json.dumps(
            [dict(zip(columns, values, strict=True)) for values in zip(*params, strict=True)],
            separators=(",", ":"),
        )
        result = conn.exec_driver_sql(sql, {"rows": document})
        # Returned times as the document wrote them, to find the input row below.
        found = [
            tuple(v.isoformat() if isinstance(v, datetime) else v for v in row) for row in result
        ] if returning else []  # fmt: skip
    else:
        tuples = list(zip(*params, strict=True))
        if not returning:
            conn.exec_driver_sql(_sqlite_sql(dialect, table, columns, tuple(conflict), (), 1),
                                 tuples)  # fmt: skip
            return []
        per = max(1, _SQLITE_MAX_PARAMS // len(columns))
        found = []
        for start in range(0, len(tuples), per):
            chunk = tuples[start : start + per]
            sql = _sqlite_sql(
                dialect, table, columns, tuple(conflict), tuple(returning), len(chunk)
            )
            flat = tuple(chain.from_iterable(chunk))
            found.extend(conn.exec_driver_sql(sql, flat))
    # Map each returned row to the input row with the same values in the shared columns.
    shared = [(r, columns.index(name)) for r, name in enumerate(returning) if name in columns]
    if not shared:
        return [(-1, tuple(row)) for row in found]
    index = {tuple(params[c][i] for _, c in shared): i for i in range(len(rows))}
    return [(index[tuple(row[r] for r, _ in shared)], tuple(row)) for row in found]


def _columns(dialect: Dialect, table: Table, columns: tuple[str, ...],
             rows: Sequence[dict[str, Any]]) -> list[list[Any]]:  # fmt: skip
    """The bound values, column by column, each distinct value processed once."""
    out = []
    for name in columns:
        process = _processor(dialect, table, name)
        values = [row[name] for row in rows]
        if process is None:
            out.append(values)
            continue
        first = values[0]
        if values.count(first) == len(values):  # one value in every row: `now`, NULL, ...
            out.append([None if first is None else process(first)] * len(values))
            continue
        memo: dict[Any, Any] = {}
        processed: list[Any] = []
        for value in values:
            if value is None:
                processed.append(None)
                continue
            key = id(value) if isinstance(value, dict | list) else value
            try:
                processed.append(memo[key])
            except KeyError:
                memo[key] = done = process(value)
                processed.append(done)
        out.append(processed)
    return out


@lru_cache(maxsize=256)
def _processor(dialect: Dialect, table: Table, name: str) -> Callable[[Any], Any] | None:
    column_type = table.c[name].type
    if dialect.name == "postgresql":
        # Values travel inside one JSON document: objects as they are, times as ISO text.
        if isinstance(column_type, UTCDateTime):
            decorator = column_type
            return lambda value: decorator.process_bind_param(value, dialect).isoformat()  # type: ignore[union-attr]
        return None
    if isinstance(column_type, JSON):
        return json.dumps  # as SQLAlchemy's JSON type stores it on SQLite
    return column_type._cached_bind_processor(dialect)  # type: ignore[no-any-return]


@lru_cache(maxsize=256)
def _pg_sql(dialect: Dialect, table: Table, columns: tuple[str, ...],
            conflict: tuple[str, ...], returning: tuple[str, ...]) -> str:  # fmt: skip
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(n) for n in columns)
    types = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in columns)
    sql = (
        f"INSERT INTO {quote(table.name)} ({names}) SELECT {names} "
        f"FROM json_to_recordset(CAST(%(rows)s AS json)) AS r({types})"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
    return sql


@lru_cache(maxsize=256)
def _sqlite_sql(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
    rows: int,
) -> str:
    quote = dialect.identifier_preparer.quote
    one = "(" + ", ".join("?" for _ in columns) + ")"
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in columns)}) "
        f"VALUES {', '.join(one for _ in range(rows))}"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
    return sql
