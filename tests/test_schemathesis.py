"""Schemathesis over the daemon's own OpenAPI schema, in process (ASGI), on both stores.

Every operation in /openapi.json is called with generated and mutated parameters and
bodies, authenticated (one token serves as webhook and API token here) and not: no answer
may be a 5xx, and every status code must be one the schema documents for the operation.
10 examples per operation plus schemathesis' coverage cases: about 900 requests per store
(1,661 at 20 examples, measured).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from escalator.web.app import create_app
from tests.support.rig import Rig

TOKEN = "schemathesis-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def web_schema(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("ESCALATOR_API_TOKEN", TOKEN)
    rig = Rig(database_url)
    try:
        app = create_app(rig.daemon, run_engine=False)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        rig.close()


schema = schemathesis.pytest.from_fixture("web_schema")


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_documented_codes_and_never_5xx(case: Any) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error, status_code_conformance])
