"""Configuration: the shipped file validates, and every error names file, path and line.

An on-call config is read at 3 a.m. by someone in a hurry: a typo must fail loudly and say
exactly where, never fall back to a default.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalator.config import Config, ConfigError, Route, Secret, load_config, parse_config
from escalator.config.durations import format_duration, parse_duration
from tests.support.helpers import SHIPPED_CONFIG, shipped_config

# A small valid config; each error test breaks exactly one line of it.
BASE = textwrap.dedent(
    """\
    people:
      - id: alice
        phone: "+15550100001"
        timezone: Europe/Berlin
      - id: bob
        email: bob@example.com
    teams:
      - id: ops
        members: [alice, bob]
    policies:
      critical:
        steps:
          - after: 0s
            targets: [{person: alice}]
          - after: 5m
            condition: unresolved
            targets: [{team: ops}]
    routes:
      - match: {severity: critical}
        policy: critical
    """
)


def write(tmp_path: Path, text: str, name: str = "escalator.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(tmp_path: Path, text: str) -> tuple[str, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(path), caught.value


def test_base_config_is_valid(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert [p.id for p in cfg.people] == ["alice", "bob"]
    assert cfg.policies["critical"].steps[1].after == timedelta(minutes=5)


def test_shipped_config_validates_and_holds_the_credlink_matrix() -> None:
    cfg = shipped_config()
    assert set(cfg.policies) == {"critical", "warning", "info"}
    critical = cfg.policies["critical"]
    assert [(s.after, s.condition) for s in critical.steps] == [
        (timedelta(0), "unacknowledged"),
        (timedelta(minutes=5), "unacknowledged"),
        (timedelta(minutes=15), "unresolved"),
        (timedelta(minutes=30), "unresolved"),
        (timedelta(minutes=45), "unresolved"),
    ]
    assert critical.repeat is not None
    assert (critical.repeat.every, critical.repeat.times) == (timedelta(minutes=15), 4)
    assert critical.response_time == timedelta(minutes=5)
    assert cfg.policies["warning"].response_time == timedelta(minutes=30)
    assert cfg.policies["info"].response_time == timedelta(hours=2)
    assert [s.urgency for s in cfg.policies["warning"].steps] == ["notify", "page"]
    assert len(cfg.policies["info"].steps) == 1
    # The webhook token is never inline: it is read from the environment.
    assert cfg.server.webhook_token == Secret(env="ESCALATOR_WEBHOOK_TOKEN")
    assert cfg.route({"severity": "critical"}) == "critical"
    assert cfg.route({"alertname": "X"}) == "warning"


# Every error names file + dotted path + line ----------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where", "reason"),
    [
        pytest.param(
            "after: 5m",
            "after: 5mins",
            "policies.critical.steps[1].after (line 15)",
            "invalid duration '5mins'",
            id="bad-duration",
        ),
        pytest.param(
            "targets: [{person: alice}]",
            "targets: [{person: alicia}]",
            "policies.critical.steps[0].targets[0].person (line 14)",
            "unknown person 'alicia'",
            id="unknown-person-in-step",
        ),
        pytest.param(
            "members: [alice, bob]",
            "members: [alice, robert]",
            "teams[0].members[1] (line 9)",
            "unknown person 'robert'",
            id="unknown-team-member",
        ),
        pytest.param(
            "    policy: critical",
            "    policy: critcal",
            "routes[0].policy (line 20)",
            "unknown policy 'critcal'",
            id="unknown-policy-in-route",
        ),
        pytest.param(
            "condition: unresolved",
            "conditon: unresolved",
            "policies.critical.steps[1].conditon (line 16)",
            "unknown key 'conditon'",
            id="typo-key",
        ),
        pytest.param(
            "condition: unresolved",
            "condition: unresolvd",
            "policies.critical.steps[1].condition (line 16)",
            "'unacknowledged' or 'unresolved'",
            id="bad-condition-value",
        ),
        pytest.param(
            "timezone: Europe/Berlin",
            "timezone: Europe/Berlín",
            "people[0].timezone (line 4)",
            "unknown time zone 'Europe/Berlín'",
            id="bad-time-zone",
        ),
        pytest.param(
            'phone: "+15550100001"',
            'phone: "555-0100"',
            "people[0].phone (line 3)",
            "'555-0100' is not an E.164 phone number",
            id="bad-phone",
        ),
        pytest.param(
            "  - id: bob",
            "  - id: alice",
            "people[1].id (line 5)",
            "duplicate id 'alice'",
            id="duplicate-id",
        ),
        pytest.param(
            "email: bob@example.com",
            "email: bob-at-example",
            "people[1].email (line 6)",
            "is not an email address",
            id="bad-email",
        ),
    ],
)
def test_error_names_file_path_line_and_reason(
    tmp_path: Path, old: str, new: str, where: str, reason: str
) -> None:
    assert BASE.count(old) == 1, old
    source, error = errors_of(tmp_path, BASE.replace(old, new))
    assert error.source == source
    # The broken line is the first problem reported (a duplicate id also leaves the
    # renamed person's team membership dangling, which is reported after it).
    (location, message) = error.problems[0]
    assert location == where
    assert reason in message
    assert f"{source}: {where}: " in error.render()


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    source, error = errors_of(tmp_path, BASE.replace("  - id: bob", "  - id: [bob"))
    assert error.source == source
    (location, message) = error.problems[0]
    assert location == "line 6"  # where the parser noticed the unclosed bracket
    assert message.startswith("invalid YAML")
    assert str(error).startswith(f"{source}: line 6: invalid YAML")


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = BASE.replace("after: 5m", "after: soon").replace('"+15550100001"', '"12"')
    _, error = errors_of(tmp_path, text)
    locations = [where for where, _ in error.problems]
    assert locations == ["people[0].phone (line 3)", "policies.critical.steps[1].after (line 15)"]


def test_steps_out_of_order_are_rejected(tmp_path: Path) -> None:
    text = BASE.replace("after: 0s", "after: 10m")
    _, error = errors_of(tmp_path, text)
    assert error.problems == [("policies.critical (line 12)", "steps must be ordered by `after`")]


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    _, error = errors_of(tmp_path, "- just\n- a list\n")
    assert error.problems == [("(top level)", "expected a mapping of settings")]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert caught.value.source == str(missing)
    assert caught.value.problems[0][0] == "(file)"
    assert "cannot read" in caught.value.problems[0][1]


def test_a_role_cannot_name_a_role(tmp_path: Path) -> None:
    text = BASE + "roles:\n  lead: [{person: alice}]\n  boss: [{role: lead}]\n"
    _, error = errors_of(tmp_path, text)
    assert error.problems == [("roles.boss[0].role (line 23)", "a role cannot name another role")]


# Secrets ---------------------------------------------------------------------------------------


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret(env="ESCALATOR_TEST_SECRET")
    monkeypatch.delenv("ESCALATOR_TEST_SECRET", raising=False)
    assert secret.resolve() is None
    monkeypatch.setenv("ESCALATOR_TEST_SECRET", "  s3cret\n")
    assert secret.resolve() == "s3cret"
    monkeypatch.setenv("ESCALATOR_TEST_SECRET", "   ")
    assert secret.resolve() is None  # blank counts as unset, not as an empty token
    assert secret.describe() == "$ESCALATOR_TEST_SECRET"


def test_secret_from_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    secret = Secret(file=path)
    assert secret.resolve() is None
    path.write_text("from-file\n")
    assert secret.resolve() == "from-file"
    assert secret.describe() == str(path)


def test_secret_in_config_and_exactly_one_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "api").write_text("api-token")
    monkeypatch.setenv("HOOK_TOKEN", "hook-token")
    text = BASE + (
        f"server:\n  webhook_token: {{env: HOOK_TOKEN}}\n"
        f"  api_token: {{file: {tmp_path / 'api'}}}\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.server.webhook_token is not None and cfg.server.api_token is not None
    assert cfg.server.webhook_token.resolve() == "hook-token"
    assert cfg.server.api_token.resolve() == "api-token"
    both = BASE + "server:\n  webhook_token: {env: A, file: /b}\n"
    _, error = errors_of(tmp_path, both)
    assert error.problems == [
        (
            "server.webhook_token (line 22)",
            "give exactly one of `env` (a variable name) or `file` (a path)",
        )
    ]
    inline = BASE + "server:\n  webhook_token: hunter2\n"
    _, error = errors_of(tmp_path, inline)
    assert error.problems[0][0] == "server.webhook_token (line 22)"


# Routes ------------------------------------------------------------------------------------


def _routed(routes: str, default: str | None = None) -> Config:
    text = (
        textwrap.dedent(
            """\
        policies:
          a: {steps: [{targets: [{channel: a}]}]}
          b: {steps: [{targets: [{channel: b}]}]}
          critical: {steps: [{targets: [{channel: c}]}]}
        """
        )
        + routes
        + (f"default_policy: {default}\n" if default else "")
    )
    return parse_config(text, "routes.yaml")


def test_first_matching_route_wins() -> None:
    cfg = _routed(
        "routes:\n"
        "  - {match: {team: db, severity: critical}, policy: a}\n"
        "  - {match: {severity: critical}, policy: b}\n"
    )
    assert cfg.route({"team": "db", "severity": "critical"}) == "a"
    assert cfg.route({"team": "web", "severity": "critical"}) == "b"
    assert cfg.route({"severity": "critical", "team": "db", "extra": "x"}) == "a"


def test_match_re_is_anchored_like_alertmanager() -> None:
    route = Route(match_re={"severity": "crit|warn"}, policy="a")
    assert route.matches({"severity": "crit"})
    assert route.matches({"severity": "warn"})
    assert not route.matches({"severity": "critical"})  # not a substring search
    assert not route.matches({"severity": "xcrit"})
    assert not route.matches({})
    assert Route(match_re={"env": ".*"}, policy="a").matches({})  # absent label is ""
    cfg = _routed("routes:\n  - {match_re: {service: 'api-.*'}, policy: a}\n")
    assert cfg.route({"service": "api-gateway"}) == "a"
    assert cfg.route({"service": "web-api-gateway"}) is None  # anchored at the start too


def test_bad_regular_expression_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        _routed("routes:\n  - {match_re: {service: 'api-(('}, policy: a}\n")
    (where, why) = caught.value.problems[0]
    assert where.startswith("routes[0].match_re")
    assert "invalid regular expression" in why


def test_default_policy_then_severity_fallback() -> None:
    routes = "routes:\n  - {match: {team: db}, policy: a}\n"
    with_default = _routed(routes, default="b")
    assert with_default.route({"team": "db"}) == "a"
    assert with_default.route({"severity": "critical"}) == "b"  # default before severity
    without = _routed(routes)
    assert without.route({"severity": "critical"}) == "critical"  # severity names a policy
    assert without.route({"severity": "page-me"}) is None  # nothing: not tracked
    assert without.route({}) is None


def test_unknown_default_policy_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        _routed("", default="nope")
    assert caught.value.problems == [("default_policy (line 5)", "unknown policy 'nope'")]


# Durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delta", "canonical"),
    [
        ("0", timedelta(0), "0s"),
        ("0s", timedelta(0), "0s"),
        ("30s", timedelta(seconds=30), "30s"),
        ("5m", timedelta(minutes=5), "5m"),
        ("90m", timedelta(minutes=90), "1h30m"),
        ("1h30m", timedelta(minutes=90), "1h30m"),
        ("2h", timedelta(hours=2), "2h"),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        # Prometheus writes weeks only when they are exact, years (365d) always.
        ("1w", timedelta(weeks=1), "1w"),
        ("8d", timedelta(days=8), "8d"),
        ("1y", timedelta(days=365), "1y"),
        ("1y2w", timedelta(days=379), "1y2w"),
        ("1y8d", timedelta(days=373), "1y8d"),
        # Milliseconds survive: these were `1s` and `0s` before (issue 9).
        ("1500ms", timedelta(milliseconds=1500), "1s500ms"),
        ("1s500ms", timedelta(milliseconds=1500), "1s500ms"),
        ("250ms", timedelta(milliseconds=250), "250ms"),
        ("1m0s5ms", timedelta(minutes=1, milliseconds=5), "1m5ms"),
        ("10ms", timedelta(milliseconds=10), "10ms"),
    ],
)
def test_duration_parse_and_format_round_trip(text: str, delta: timedelta, canonical: str) -> None:
    assert parse_duration(text) == delta
    assert format_duration(delta) == canonical
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    "text",
    # Prometheus' grammar: units largest first, each at most once; no signs, no fractions.
    ["", "5", "5 m", "m5", "5min", "-5m", "1.5h", "5m30", "h", "5m1h", "1m1m", "1s1m", "ms",
     "30s5m", "1ms1s", "1d1w", "5M", "1µs", "٣s"],
)
def test_bad_durations_are_rejected_with_the_text(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


@given(st.integers(min_value=0, max_value=500 * 365 * 86_400_000))
def test_every_whole_millisecond_duration_survives_format_then_parse(ms: int) -> None:
    delta = timedelta(milliseconds=ms)
    text = format_duration(delta)
    assert parse_duration(text) == delta
    assert format_duration(parse_duration(text)) == text  # and the text form is canonical


@given(
    st.lists(st.integers(min_value=0, max_value=999), min_size=7, max_size=7),
    st.lists(st.booleans(), min_size=7, max_size=7),
)
def test_any_text_in_the_grammar_parses_to_the_sum_of_its_parts(
    numbers: list[int], present: list[bool]
) -> None:
    units = [("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)]
    units += [("s", 1), ("ms", 0.001)]
    chosen = zip(numbers, units, present, strict=True)
    parts = [(n, u, size) for n, (u, size), keep in chosen if keep]
    if not parts:
        return
    text = "".join(f"{n}{u}" for n, u, _ in parts)
    expected = timedelta(milliseconds=sum(round(n * size * 1000) for n, _, size in parts))
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


def test_numeric_durations_are_whole_milliseconds() -> None:
    """`after: 1.5` (seconds) is 1.5 s; sub-millisecond parts round, so what a policy
    snapshot stores as text is exactly what the policy held."""
    cfg = parse_config(BASE.replace("after: 5m", "after: 0.0015"))
    step = next(s for s in cfg.policies["critical"].steps if s.after)
    assert step.after == timedelta(milliseconds=2)
    assert format_duration(step.after) == "2ms"


def test_config_durations_accept_numbers_as_seconds_and_dump_back_as_text() -> None:
    cfg = shipped_config()
    dumped = cfg.policies["critical"].model_dump(mode="json")
    assert [s["after"] for s in dumped["steps"]] == ["0s", "5m", "15m", "30m", "45m"]
    assert dumped["repeat"] == {"every": "15m", "times": 4, "condition": "unacknowledged"}
    text = BASE.replace("after: 5m", "after: 300")
    assert parse_config(text).policies["critical"].steps[1].after == timedelta(minutes=5)


def test_shipped_config_path_is_the_one_the_cli_defaults_to() -> None:
    assert SHIPPED_CONFIG.exists()
    assert SHIPPED_CONFIG.parts[-2:] == ("config", "escalator.yaml")
