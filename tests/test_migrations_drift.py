"""The migrations build exactly the schema the models describe (issue 9 item 7).

On both backends: `alembic upgrade head` on an empty database, then Alembic's own
`compare_metadata` against every table the code maps (escalator.store.tables, the Slack
tables, the console's logins). A model changed without a migration, or a migration that
builds something the models do not say, fails here with the differences listed, instead
of at the first INSERT in production.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, String, Text

import escalator
from escalator.store.db import make_engine, upgrade
from escalator.store.tables import Base
from tests.support.pg import fresh_database

# Modules that map tables onto Base.metadata besides escalator.store.tables.
TABLE_MODULES = ("escalator.store.slack_tables", "escalator.web.ui.logins")


def _all_metadata() -> MetaData:
    """Base.metadata with every mapping module imported (a table registers on import)."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return Base.metadata


def test_every_module_that_maps_a_table_is_compared() -> None:
    """A new module declaring `class X(Base)` must be added to TABLE_MODULES."""
    root = Path(escalator.__file__).parent
    declaring = set()
    for module in pkgutil.walk_packages([str(root)], prefix="escalator."):
        path = root.joinpath(*module.name.split(".")[1:])
        source = path.with_suffix(".py")
        if source.is_file() and "(Base):" in source.read_text(encoding="utf-8"):
            declaring.add(module.name)
    assert declaring == {"escalator.store.tables", *TABLE_MODULES}


def _relevant(diff: Any) -> bool:
    """Differences that are real drift. SQLite cannot say which server default a column
    had in the way PostgreSQL can, and neither backend reports a type's variant; those
    are compared by type affinity, which compare_metadata already does."""
    kind = diff[0] if isinstance(diff, tuple) else diff[0][0]
    return kind not in ("modify_default",)


def _without_sqlite_keys(dialect: str, differences: list[Any]) -> list[Any]:
    """Differences the migrations leave on SQLite on purpose, set aside. Migration 0009
    drops the timeline's and the outbox's foreign keys to alerts on PostgreSQL only (a key
    there makes the sender's insert wait for ingest's row lock); SQLite has no row locks
    and keeps them rather than rebuild both tables, while the models declare none."""
    if dialect != "sqlite":
        return differences
    kept = [d for d in differences if isinstance(d, tuple) and d[0] == "remove_fk"]
    assert sorted(d[1].parent.name for d in kept) == ["outbox", "timeline"], kept
    # Migration 0010 widens label-valued columns from VARCHAR(n) to TEXT on PostgreSQL;
    # SQLite never enforced the length (both are TEXT affinity there), so it is not rebuilt.
    widened = [
        d
        for d in differences
        if isinstance(d, list)
        and d[0][0] == "modify_type"
        and isinstance(d[0][5], String)
        and not isinstance(d[0][5], Text)
        and isinstance(d[0][6], Text)
    ]
    return [d for d in differences if d not in kept and d not in widened]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'drift.db'}"
        return
    with fresh_database(prefix="escalator_drift") as url:
        yield url


def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        upgrade(engine)
        metadata = _all_metadata()
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": False,
                    "include_name": lambda name, kind, _parent: (
                        not (kind == "table" and name == "alembic_version")
                    ),
                },
            )
            differences = _without_sqlite_keys(
                engine.dialect.name,
                [d for d in compare_metadata(context, metadata) if _relevant(d)],
            )
            tables = set(conn.dialect.get_table_names(conn))
            # The same comparison does see drift: a copy of the models with one more column.
            drifted = MetaData()
            for table in metadata.tables.values():
                table.to_metadata(drifted)
            drifted.tables["alerts"].append_column(Column("not_migrated", String(10)))
            seen = _without_sqlite_keys(
                engine.dialect.name,
                [d for d in compare_metadata(context, drifted) if _relevant(d)],
            )
    finally:
        engine.dispose()
    assert differences == [], "\n".join(str(d) for d in differences)
    assert [(d[0], d[2], d[3].name) for d in seen] == [("add_column", "alerts", "not_migrated")]
    # The comparison saw the tables at all (not two empty schemas agreeing).
    assert {"alerts", "timeline", "outbox", "incidents"} <= tables
    assert set(metadata.tables) <= tables | {"alembic_version"}
