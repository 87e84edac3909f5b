"""Slack's pure parts (Block Kit, names, topics, the modal, `/escalator`), the config, and
the client wrapper against the loopback fake Slack (the real slack_sdk, in process).

The end-to-end behaviour through `escalator serve` is in test_slack_e2e.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from escalator.config import ConfigError, Person, SlackChannel, parse_config
from escalator.notify import slack_blocks as blocks
from escalator.notify.channels.slack_client import (
    Directory,
    Health,
    classify,
    make_client,
    retry_after_of,
)
from escalator.store.tables import AlertRow
from escalator.web.slack_commands import Command, CommandError, parse
from tests.fakes.fake_slack import FakeSlack

NOW = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


def _alert(alert_id: int = 12, status: str = "triggered", **kw: object) -> AlertRow:
    values: dict[str, object] = {
        "id": alert_id,
        "alertname": "PaymentsDown",
        "severity": "critical",
        "status": status,
        "level": 0,
        "acked_by": None,
        "ack_via": None,
        "acked_at": None,
        "ack_expires_at": None,
        "resolved_by": None,
        "resolved_via": None,
        "resolved_at": None,
    }
    values.update(kw)
    return AlertRow(**values)


# Block Kit ---------------------------------------------------------------------------------


def _action_ids(rendered: list[dict]) -> list[str]:
    return [e["action_id"] for b in rendered if b["type"] == "actions" for e in b["elements"]]


def test_a_triggered_alert_has_every_button_carrying_its_id() -> None:
    rendered = blocks.message_blocks("[CRITICAL] #12 PaymentsDown\nCheckout fails", [_alert()])
    assert _action_ids(rendered) == [
        blocks.ACK,
        blocks.ESCALATE,
        blocks.RESOLVE,
        blocks.SNOOZE,
        blocks.UPDATE,
    ]
    values = {e["value"] for b in rendered if b["type"] == "actions" for e in b["elements"]}
    assert values == {"12"}
    assert "TRIGGERED" in rendered[1]["elements"][0]["text"]
    assert rendered[0]["text"]["text"].startswith(":rotating_light: *[CRITICAL] #12")


def test_status_updates_are_offered_only_where_there_is_an_incident() -> None:
    warning = _alert(13, severity="warning")
    rendered = blocks.message_blocks("t", [_alert(), warning], incidents={"critical"})
    rows = [b for b in rendered if b["type"] == "actions"]
    assert blocks.UPDATE in [e["action_id"] for e in rows[0]["elements"]]
    assert blocks.UPDATE not in [e["action_id"] for e in rows[1]["elements"]]
    assert blocks.ACK in [e["action_id"] for e in rows[1]["elements"]]


def test_acknowledged_loses_the_ack_button_and_resolved_loses_all() -> None:
    acked = _alert(status="acknowledged", acked_by="alice", ack_via="slack", acked_at=NOW)
    rendered = blocks.message_blocks("t", [acked])
    assert blocks.ACK not in _action_ids(rendered)
    assert "ACKNOWLEDGED* by alice via slack at 19:00 UTC" in rendered[1]["elements"][0]["text"]
    snoozed = _alert(
        status="acknowledged", acked_by="bob", ack_expires_at=NOW + timedelta(minutes=30)
    )
    assert "snoozed until 19:30 UTC" in blocks.status_line(snoozed)
    done = _alert(status="resolved", resolved_by="alertmanager", resolved_at=NOW)
    assert _action_ids(blocks.message_blocks("t", [done])) == []
    assert "RESOLVED" in blocks.status_line(done)


def test_label_text_cannot_ping_the_channel_and_long_bundles_are_cut() -> None:
    rendered = blocks.message_blocks("<!channel> title\n<!here> body & more", [])
    text = rendered[0]["text"]["text"]
    assert "<!" not in text and "&lt;!channel&gt;" in text and "&amp;" in text
    many = [_alert(i) for i in range(1, 16)]
    rendered = blocks.message_blocks("x" * 5000, many)
    assert len(rendered[0]["text"]["text"]) <= 3000
    assert len(rendered) <= 50
    assert "and 5 more" in rendered[-1]["elements"][0]["text"]
    assert len(blocks.fallback_text("y" * 5000, many)) <= 3900


def test_channel_names_follow_slack_rules_and_keep_the_id() -> None:
    assert blocks.channel_name("incident-20260302-1900-12") == "incident-20260302-1900-12"
    assert blocks.channel_name("#Incident 20260302.1900 12") == "incident-20260302-1900-12"
    long = blocks.channel_name("incident-" + "payments-" * 12 + "20260302-1900-4711")
    assert len(long) <= 80 and long.endswith("-4711")
    assert blocks.channel_name("###") == "incident"


def test_topic_keeps_the_runbook_link_whole() -> None:
    url = "https://runbooks.credlink.example/production#service-down"
    topic = blocks.topic("critical", "CredlinkServiceDown", "s" * 400, url)
    assert len(topic) <= 250 and topic.endswith(f"| Runbook: {url}")
    assert topic.startswith("CRITICAL CredlinkServiceDown: sss")
    assert blocks.topic(None, "X", "", None) == "NONE X"


def test_the_update_modal_round_trips_its_values() -> None:
    view = blocks.update_modal(7, "PaymentsDown")
    assert view["private_metadata"] == "7" and view["callback_id"] == blocks.UPDATE_VIEW
    state = {
        "values": {
            "status": {"value": {"selected_option": {"value": "MONITORING"}}},
            "impact": {"value": {"value": "  20% of checkouts fail  "}},
            "next_update": {"value": {"value": ""}},
        }
    }
    assert blocks.modal_values({"state": state}) == ("MONITORING", "20% of checkouts fail", None)
    state["values"]["impact"] = {"value": {"value": " "}}
    with pytest.raises(ValueError, match="impact"):
        blocks.modal_values({"state": state})
    state["values"]["status"] = {"value": {"selected_option": {"value": "PANIC"}}}
    with pytest.raises(ValueError, match="status"):
        blocks.modal_values({"state": state})


# /escalator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Command("help")),
        ("help", Command("help")),
        ("ack 12", Command("ack", (12,))),
        ("ACK #12, 13 12", Command("ack", (12, 13))),
        ("ack all", Command("ack", all=True)),
        ("resolve 4", Command("resolve", (4,))),
        ("update 4 Rolled back, watching", Command("update", (4,), text="Rolled back, watching")),
        ("list", Command("list")),
        ("oncall", Command("oncall")),
    ],
)  # fmt: skip
def test_slash_command_grammar(text: str, command: Command) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    "text", ["ack", "ack twelve", "resolve", "update", "update 4", "update x hi", "reboot 4"]
)
def test_slash_command_mistakes_say_how(text: str) -> None:
    with pytest.raises(CommandError, match=r"Usage|at most"):
        parse(text)


# Config ---------------------------------------------------------------------------------------

_BASE = """
people: [{id: alice, email: alice@credlink.example, slack_user: U0ALICE}]
policies: {p: {steps: [{targets: [{channel: incidents}]}]}}
channels:
  slack:
    bot_token: {env: SLACK_BOT_TOKEN}
    signing_secret: {file: /etc/escalator/slack-signing-secret}
    channels: {incidents: C0123ABCD}
"""


def test_slack_config_parses_with_secrets_by_reference() -> None:
    config = parse_config(_BASE)
    slack = config.channels.slack
    assert isinstance(slack, SlackChannel)
    assert slack.channels == {"incidents": "C0123ABCD"}
    assert slack.incident_channels and slack.archive_after_postmortem
    assert slack.max_retry_after == timedelta(seconds=5)
    assert config.people[0].slack_user == "U0ALICE"


def test_check_config_warns_about_an_incomplete_slack_setup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from escalator.config import checks

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    config = parse_config(
        _BASE.replace("{incidents: C0123ABCD}", "{alerts: C0123ABCD}").replace(
            "people: [{id: alice, email: alice@credlink.example, slack_user: U0ALICE}]",
            "people: [{id: alice}]",
        )
    )
    found = {(f.level, f.path): f.message for f in checks.check(config)}
    # The signing secret's file does not exist here: serve would refuse to start.
    assert "does not exist" in found[("error", "channels.slack.signing_secret")]
    assert ("error", "channels.slack.bot_token") not in found
    assert "alice" in found[("warning", "people")]
    unmapped = found[("warning", "policies.p.steps[0].targets[0].channel")]
    assert "'incidents'" in unmapped and "console" in unmapped


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("slack_user: U0ALICE", "slack_user: alice"), "people[0].slack_user"),
        (("bot_token: {env: SLACK_BOT_TOKEN}", "bot_token: xoxb-inline"), "bot_token"),
        (("channels: {incidents: C0123ABCD}", "invite: [{role: nobody}]"), "invite[0].role"),
        (("channels: {incidents: C0123ABCD}", "channel: {incidents: C1}"), "channel"),
    ],
)
def test_slack_config_errors_name_the_path(change: tuple[str, str], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_BASE.replace(*change), "escalator.yaml")
    assert where in str(caught.value) and "escalator.yaml" in str(caught.value)


# The client against the fake ------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    slack = FakeSlack("xoxb-" + secrets.token_hex(8), secrets.token_hex(8)).start()
    try:
        yield slack
    finally:
        slack.stop()


def _settings(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch, **kw: object) -> SlackChannel:
    monkeypatch.setenv("T_SLACK_TOKEN", fake.bot_token)
    monkeypatch.setenv("T_SLACK_SECRET", fake.signing_secret)
    return SlackChannel.model_validate(
        {
            "bot_token": {"env": "T_SLACK_TOKEN"},
            "signing_secret": {"env": "T_SLACK_SECRET"},
            "api_base_url": fake.api_url,
            **kw,
        }
    )


def test_a_short_retry_after_is_waited_out_inside_the_call(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(_settings(fake, monkeypatch, max_retry_after="5s"))
    channel = fake.add_channel("incidents")
    fake.fail("chat.postMessage", "ratelimited", retry_after=1)
    answer = client.chat_postMessage(channel=channel, text="hello")
    assert answer["ok"]
    first, second = fake.calls_of("chat.postMessage")
    assert first.error == "ratelimited" and second.error is None
    assert second.at - first.at >= 1.0  # not before Retry-After
    assert len(fake.channels[channel].messages) == 1


def test_a_long_retry_after_ends_the_attempt_as_retry(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(_settings(fake, monkeypatch, max_retry_after="1s"))
    channel = fake.add_channel("incidents")
    fake.fail("chat.postMessage", "ratelimited", retry_after=120)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel=channel, text="hello")
    result = classify(caught.value)
    assert result.outcome == "retry" and "Retry-After 120" in result.detail
    assert retry_after_of(caught.value) == 120.0
    assert len(fake.calls_of("chat.postMessage")) == 1


@pytest.mark.parametrize(
    ("error", "status", "outcome", "auth"),
    [
        ("channel_not_found", 200, "failed", False),
        ("not_in_channel", 200, "failed", False),
        ("invalid_auth", 200, "failed", True),
        ("internal_error", 500, "retry", False),
        ("missing_scope", 200, "failed", False),
    ],
)
def test_slack_errors_are_classified(
    fake: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
    status: int,
    outcome: str,
    auth: bool,
) -> None:
    client = make_client(_settings(fake, monkeypatch))
    fake.fail("chat.postMessage", error, status=status)
    health = Health()
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="x")
    result = classify(caught.value, health)
    assert (result.outcome, error in result.detail) == (outcome, True)
    assert (health.problem is not None) == auth
    health.worked()
    assert health.problem is None


def test_unreachable_slack_is_retried() -> None:
    result = classify(ConnectionRefusedError("refused"))
    assert result.outcome == "retry" and "unreachable" in result.detail


def test_directory_prefers_slack_user_and_caches_lookups(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_id = fake.add_user("alice@credlink.example")
    config = parse_config(
        """
people:
  - {id: alice, email: Alice@Credlink.example}
  - {id: bob, email: bob@credlink.example, slack_user: U0BOBSLACK}
  - {id: carl, email: carl@credlink.example}
policies: {p: {steps: [{targets: [{person: alice}]}]}}
"""
    )
    directory = Directory(make_client(_settings(fake, monkeypatch)), config)
    alice, bob, carl = config.people
    assert directory.user_of(alice) == alice_id
    assert directory.user_of(alice) == alice_id
    assert directory.user_of(bob) == "U0BOBSLACK"  # no lookup at all
    assert directory.user_of(carl) is None
    assert directory.user_of(carl) is None
    assert len(fake.calls_of("users.lookupByEmail")) == 2  # alice once, carl once
    assert directory.person_of(alice_id) == alice
    assert directory.person_of("U0BOBSLACK") == bob
    stranger = fake.add_user("someone@elsewhere.example")
    assert directory.person_of(stranger) is None
    assert directory.person_of(stranger) is None
    assert len(fake.calls_of("users.info")) == 2  # alice once, the stranger once
    assert isinstance(alice, Person)


def test_the_fakes_signatures_are_slacks(fake: FakeSlack) -> None:
    """The test rig signs as Slack does: slack_sdk's verifier accepts it, within 5 minutes."""
    body = "payload=%7B%7D"
    verifier = SignatureVerifier(fake.signing_secret)
    now = int(time.time())
    good = fake.sign(body, now)
    assert verifier.is_valid(body, good["X-Slack-Request-Timestamp"], good["X-Slack-Signature"])
    old = fake.sign(body, now - 301)
    assert not verifier.is_valid(body, old["X-Slack-Request-Timestamp"], old["X-Slack-Signature"])
    forged = fake.sign(body, now, secret="other")
    assert not verifier.is_valid(
        body, forged["X-Slack-Request-Timestamp"], forged["X-Slack-Signature"]
    )


def test_the_shipped_manifest_matches_the_routes_and_methods() -> None:
    """deploy/slack-app-manifest.yaml points at the routes escalator serves and grants the
    scopes of every Web API method escalator calls."""
    from pathlib import Path

    import yaml
    from fastapi import APIRouter

    from escalator.web.slack import slack_router

    root = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((root / "deploy" / "slack-app-manifest.yaml").read_text())

    class _NoSlack:  # the router's paths do not depend on the daemon
        slack = None
        services = None

    router: APIRouter = slack_router(_NoSlack())  # type: ignore[arg-type]
    paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    interactivity = manifest["settings"]["interactivity"]["request_url"]
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/escalator"
    assert {"/" + u.split("/", 3)[3] for u in (interactivity, command["url"])} == paths
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {
        "chat:write",  # chat.postMessage, chat.update
        "channels:manage",  # conversations.create / invite / setTopic / archive
        "channels:read",  # conversations.list / info / members
        "channels:history",  # conversations.history
        "pins:write",  # pins.add
        "users:read",  # users.info
        "users:read.email",  # users.lookupByEmail
        "commands",
    }
    assert needed <= scopes
    readme = (root / "README.md").read_text()
    assert "deploy/slack-app-manifest.yaml" in readme
    assert all(scope in readme for scope in needed)
