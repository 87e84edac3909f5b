"""A Hypothesis fuzzer of Alertmanager's webhook body, on both stores.

Starting from real Alertmanager bodies, each example mutates them: a value anywhere
replaced by another JSON value of any type, a key dropped, weird text (lone surrogates,
NUL, bidi overrides, escape sequences, astral characters) put in labels and annotations,
or the encoded bytes themselves cut, corrupted or made invalid UTF-8. Whatever comes:
never a 5xx, and a refused body (4xx) changes nothing in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.store.tables import AlertRow, OutboxRow, TimelineRow
from escalator.web.app import create_app
from escalator.web.bodies import MAX_DEPTH, BadBody, parse_json
from tests.support.helpers import am_alert, am_body, count_rows
from tests.support.rig import Rig

TOKEN = "fuzz-hook-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

WEIRD = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.sampled_from(["\x00", "a\x00b", "\u202e", "\x1b[2J", "\r\n", "\ufeff", "😀" * 3, ""]),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | WEIRD,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WEIRD, inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in the body (for replacement or deletion)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for n, child in enumerate(value):
            found += _paths(child, (*prefix, n))
    return found


def _set(body: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return body


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    count = draw(st.integers(1, 3))
    alerts = [
        am_alert(
            fingerprint=f"{draw(st.integers(0, 5)):016x}",
            status=draw(st.sampled_from(["firing", "resolved"])),
            severity=draw(st.sampled_from(["critical", "warning", "info", ""])),
        )
        for _ in range(count)
    ]
    body: Any = am_body(*alerts)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["replace", "delete", "label", "annotation"]))
        if kind in ("label", "annotation") and isinstance(body, dict):
            alerts_value = body.get("alerts")
            if isinstance(alerts_value, list) and alerts_value:
                alert = draw(st.sampled_from(alerts_value))
                field = "labels" if kind == "label" else "annotations"
                if isinstance(alert, dict) and isinstance(alert.get(field), dict):
                    alert[field][draw(WEIRD)] = draw(WEIRD)
            continue
        path = draw(st.sampled_from(_paths(body)))
        if kind == "delete" and path:
            body = _set(body, path, None, delete=True)
        else:
            body = _set(body, path, draw(JSON), delete=False)
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "none", "truncate", "byte", "invalid-utf8"]))
    if damage == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif damage == "byte" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif damage == "invalid-utf8":
        raw = raw.replace(b'"', b'"\xc3\x28', 1)
    return raw


@pytest.fixture
def client(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Rig, TestClient]]:
    monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", TOKEN)
    rig = Rig(database_url)
    try:
        with TestClient(create_app(rig.daemon, run_engine=False)) as test_client:
            yield rig, test_client
    finally:
        rig.close()


def _state(rig: Rig) -> tuple[int, ...]:
    return tuple(count_rows(rig.factory, table) for table in (AlertRow, TimelineRow, OutboxRow))


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies())
def test_mutated_webhook_bodies_are_never_5xx_and_refusals_change_nothing(
    client: tuple[Rig, TestClient], raw: bytes
) -> None:
    rig, test_client = client
    before = _state(rig)
    answer = test_client.post("/webhooks/alertmanager", content=raw, headers=HEADERS)
    assert answer.status_code < 500, (answer.status_code, answer.text, raw[:300])
    if answer.status_code >= 400:
        assert answer.json()["error"], answer.text  # the reason is given
        assert _state(rig) == before, (answer.status_code, raw[:300])
    else:
        assert answer.status_code == 200, answer.text
        json.dumps(answer.json())  # the summary is valid JSON


KEYS = st.text(alphabet="ab{", max_size=2)


def _nesting(value: Any, level: int = 1) -> int:
    """The depth `parse_json` bounds, by plain recursion (fine for generated values)."""
    if isinstance(value, dict):
        return max([level, *(_nesting(child, level + 1) for child in value.values())])
    if isinstance(value, list):
        return max([level, *(_nesting(child, level + 1) for child in value)])
    return 0


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\a', max_size=4),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner),
        max_leaves=40,
    ),
    st.integers(min_value=0, max_value=70),
)
def test_the_depth_bound_measures_nesting_as_json_has_it(value: Any, wrap: int) -> None:
    """`parse_json` refuses a body nested deeper than MAX_DEPTH and takes anything else;
    its level-by-level count (bodies._depth) agrees with plain recursion."""
    for _ in range(wrap):
        value = [value]
    raw = json.dumps(value).encode()
    if _nesting(value) > MAX_DEPTH:
        with pytest.raises(BadBody, match="nested deeper"):
            parse_json(raw)
    else:
        assert parse_json(raw) == value
