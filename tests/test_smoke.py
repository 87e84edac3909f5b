from escalator.store.db import current_revision, head_revision, make_engine, upgrade


def test_schema_upgrades_to_head(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision() == "0001"
    engine.dispose()
