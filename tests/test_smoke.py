from sqlalchemy import inspect

from escalator.store.db import current_revision, head_revision, make_engine, upgrade


def test_schema_upgrades_to_head_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # a second start (or a second replica) changes nothing
    assert head_revision() is not None
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"alerts", "policies", "timeline", "outbox", "overrides"} <= tables
    engine.dispose()
