"""Slack end to end: the real `escalator serve` daemon, the real slack_sdk, a fake Slack.

The daemon's `channels.slack.api_base_url` points slack_sdk's WebClient at the loopback
fake Slack Web API of tests/fakes/fake_slack.py, which keeps a small workspace (users with
e-mails, channels, members, topics, messages, pins). Alerts are posted to the daemon's
Alertmanager webhook; the test then plays Slack: it sends button clicks, the modal's
submission and `/escalator` commands signed with the app's signing secret exactly as Slack
signs them, and reads the workspace to see what escalator did there. Every wait polls with
a generous timeout; no assertion rests on how fast the machine is (the rate-limit test
checks a lower bound: nothing was called again before Retry-After passed).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest

from escalator.config import load_config
from escalator.notify import slack_blocks
from tests.fakes.fake_slack import BOT_USER, FakeSlack
from tests.support.pg import fresh_database
from tests.support.ports import free_port
from tests.support.processes import EscalatorProcess, clean_env, run_cli

T = TypeVar("T")
WAIT = 60.0
RUNBOOK = "https://runbooks.credlink.example/production#payments-down"


def _config(path: Path, fake: FakeSlack, channels: dict[str, str], **slack: Any) -> Path:
    """Three people (alice on call, erin the engineering lead, bob), a critical policy
    paging the rotation and #incidents, a warning policy posting to #alerts."""
    console = "rules: {page: [{method: console}], notify: [{method: console}]}"
    settings = {
        "bot_token": {"env": "SLACK_BOT_TOKEN"},
        "signing_secret": {"env": "SLACK_SIGNING_SECRET"},
        "channels": channels,
        "api_base_url": fake.api_url,
        **slack,
    }
    path.write_text(
        f"""
engine: {{tick_interval: 200ms, send_retry_base: 200ms, send_lease: 10s}}
people:
  - {{id: alice, name: Alice Oncall, email: alice@credlink.example, {console}}}
  - {{id: bob, name: Bob Oncall, email: bob@credlink.example, {console}}}
  - {{id: erin, name: Erin Lead, email: Engineering-Lead@credlink.example, {console}}}
rotations:
  - {{id: primary, type: weekly, members: [alice]}}
roles:
  engineering_lead: [{{person: erin}}]
policies:
  critical:
    steps:
      - targets: [{{rotation: primary}}, {{channel: incidents}}]
      - after: 10m
        targets: [{{role: engineering_lead}}]
  warning:
    steps:
      - urgency: notify
        targets: [{{channel: alerts}}]
routes:
  - match: {{severity: critical}}
    policy: critical
default_policy: warning
incidents:
  severities: [critical]
  channel: incidents
  stakeholders: [{{role: engineering_lead}}]
runbooks:
  PaymentsDown: {{url: "{RUNBOOK}", title: Payments down}}
channels:
  slack: {json.dumps(settings)}
"""
    )
    load_config(path)  # a broken test config fails here, with its reason
    return path


def _body(name: str, severity: str, fingerprint: str, status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "escalator",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "severity": severity, "service": "payments"},
                "annotations": {"summary": f"{name} in production"},
                "startsAt": "2026-03-02T18:59:47Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.test/graph",
                "fingerprint": fingerprint,
            }
        ],
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.test",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class Rig:
    """The fake Slack workspace and the daemon(s) using it."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.token = "xoxb-" + secrets.token_hex(12)
        self.secret = secrets.token_hex(16)
        self.slack = FakeSlack(self.token, self.secret).start()
        self.alice = self.slack.add_user("alice@credlink.example", "alice")
        self.bob = self.slack.add_user("bob@credlink.example", "bob")
        self.erin = self.slack.add_user("engineering-lead@credlink.example", "erin")
        self.stranger = self.slack.add_user("visitor@elsewhere.example", "visitor")
        self.incidents = self.slack.add_channel("incidents")
        self.alerts_channel = self.slack.add_channel("alerts")
        self.daemons: list[EscalatorProcess] = []

    def start(
        self,
        database_url: str,
        replicas: int = 1,
        channels: dict[str, str] | None = None,
        **kw: Any,
    ) -> list[EscalatorProcess]:
        mapping = channels or {"incidents": self.incidents, "alerts": self.alerts_channel}
        config = _config(self.tmp / "escalator.yaml", self.slack, mapping, **kw)
        env = clean_env(SLACK_BOT_TOKEN=self.token, SLACK_SIGNING_SECRET=self.secret)
        started = [
            EscalatorProcess(
                self.tmp,
                config,
                database_url,
                free_port(),
                env,
                name=f"escalator{i}",
                log_level="warning",
            )
            for i in range(replicas)
        ]
        self.daemons.extend(started)
        for daemon in started:
            daemon.start()
        for daemon in started:
            daemon.wait_ready(timeout=90)
        return started

    @property
    def url(self) -> str:
        return self.daemons[0].url

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        self.slack.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {d.name}:\n{d.stderr()}\n{d.stdout()[-3000:]}" for d in self.daemons)

    # escalator's side --------------------------------------------------------------------

    def fire(self, name: str, severity: str = "critical", urls: list[str] | None = None) -> int:
        body = _body(name, severity, secrets.token_hex(8))
        for url in urls or [self.url]:
            response = httpx.post(f"{url}/webhooks/alertmanager", json=body, timeout=30)
            assert response.status_code == 200, response.text
        listed = httpx.get(f"{self.url}/api/v1/alerts", timeout=30).json()
        return int(next(a["id"] for a in listed if a["alertname"] == name))

    def alert(self, alert_id: int) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/alerts/{alert_id}", timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    # Slack's side ------------------------------------------------------------------------

    def post_signed(
        self, path: str, fields: dict[str, str], timestamp: int | None = None, secret: str = ""
    ) -> httpx.Response:
        body = urlencode(fields)
        headers = self.slack.sign(body, timestamp, secret or None)
        return httpx.post(f"{self.url}{path}", content=body, headers=headers, timeout=30)

    def click(
        self, user: str, action: str, alert_id: int, key: str, **signing: Any
    ) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": f"trigger-{key}",
            "response_url": self.slack.response_url(key),
            "actions": [{"action_id": action, "value": str(alert_id), "block_id": "x"}],
        }
        return self.post_signed("/slack/interactions", {"payload": json.dumps(payload)}, **signing)

    def command(self, user: str, text: str, **signing: Any) -> httpx.Response:
        fields = {"command": "/escalator", "text": text, "user_id": user, "team_id": "TFAKE"}
        return self.post_signed("/slack/commands", fields, **signing)

    def incident_channel(self, alert_id: int) -> Any:
        return next(
            (
                c
                for c in list(self.slack.channels.values())
                if c.name.startswith("incident-") and c.name.endswith(f"-{alert_id}")
            ),
            None,
        )


def _actions(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def _shows(message: dict[str, Any], text: str) -> bool:
    return text in json.dumps(message["blocks"])


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    try:
        yield made
    except BaseException:
        print(made.logs())
        raise
    finally:
        made.stop()


def test_critical_alert_opens_one_incident_channel_and_a_signed_click_acknowledges(
    rig: Rig, sqlite_url: str
) -> None:
    rig.start(sqlite_url)
    alert_id = rig.fire("PaymentsDown")

    channel = wait_for("the incident channel", lambda: rig.incident_channel(alert_id))
    wait_for("the pinned initial notice", lambda: channel.pins)
    opened = datetime.now(UTC)
    assert channel.name.startswith(f"incident-{opened:%Y%m%d}-")
    assert len(channel.name) <= 80
    # Exactly one channel, created once; the on-call (alice) and the engineering lead (erin,
    # found by her e-mail whatever its case) invited; bob, not involved, is not.
    assert len(rig.slack.ok_calls("conversations.create")) == 1
    assert [c.name for c in rig.slack.channels.values()].count(channel.name) == 1
    assert channel.members == {BOT_USER, rig.alice, rig.erin}
    assert "CRITICAL PaymentsDown" in channel.topic and RUNBOOK in channel.topic
    pinned = next(m for m in channel.messages if m["ts"] == channel.pins[0])
    assert "INCIDENT DECLARED" in pinned["text"] and _shows(pinned, RUNBOOK)
    assert ("escalator_ack", str(alert_id)) in _actions(pinned)
    assert len(channel.pins) == 1

    # #incidents: the page (Block Kit, with the four buttons and the update modal button).
    def page() -> dict[str, Any] | None:
        return next((m for m in rig.slack.channels[rig.incidents].messages if _actions(m)), None)

    card = wait_for("the page in #incidents", page)
    assert {a for a, _ in _actions(card)} == set(slack_blocks.ACTIONS)
    assert _shows(card, "TRIGGERED")
    assert rig.alert(alert_id)["status"] == "triggered"

    # A signed click on Acknowledge by alice (mapped by her Slack e-mail).
    response = rig.click(rig.alice, slack_blocks.ACK, alert_id, "ack1")
    assert response.status_code == 200, response.text
    shown = wait_for(
        "the acknowledgement", lambda: (a := rig.alert(alert_id))["status"] == "acknowledged" and a
    )
    assert shown["acked_by"] == "alice"
    assert any(t["kind"] == "acknowledged" and t["channel"] == "slack" for t in shown["timeline"])
    answer = wait_for("the ephemeral answer", lambda: rig.slack.responses_to("ack1"))
    assert answer[0]["response_type"] == "ephemeral" and f"#{alert_id}" in answer[0]["text"]

    # Every message showing the alert is updated in place: acknowledged, no Acknowledge button.
    def updated() -> bool:
        cards = [
            m
            for c in (rig.slack.channels[rig.incidents], channel)
            for m in c.messages
            if _actions(m)
        ]
        return (
            bool(cards)
            and all(_shows(m, "ACKNOWLEDGED") and _shows(m, "by alice") for m in cards)
            and any(m["edits"] >= 1 for m in cards)
        )

    wait_for("the messages updated in place", updated)
    assert all(a != "escalator_ack" for a, _ in _actions(pinned))

    # "Post status update": the button opens the modal; its signed submission posts the
    # update in the incident channel.
    assert rig.click(rig.alice, slack_blocks.UPDATE, alert_id, "upd").status_code == 200
    modal = wait_for("the modal", lambda: rig.slack.views)[0]["view"]
    assert modal["callback_id"] == slack_blocks.UPDATE_VIEW
    submission = {
        "type": "view_submission",
        "user": {"id": rig.alice},
        "view": {
            "callback_id": slack_blocks.UPDATE_VIEW,
            "private_metadata": str(alert_id),
            "state": {
                "values": {
                    "status": {"value": {"selected_option": {"value": "MONITORING"}}},
                    "impact": {"value": {"value": "Checkout failing for 20% of users"}},
                    "next_update": {"value": {"value": "19:30 UTC"}},
                }
            },
        },
    }
    response = rig.post_signed("/slack/interactions", {"payload": json.dumps(submission)})
    assert response.status_code == 200 and not response.content, response.text
    wait_for(
        "the status update in the incident channel",
        lambda: any("Checkout failing for 20% of users" in m["text"] for m in channel.messages),
    )

    # Resolve from Slack; the resolution is posted there, the post-mortem link archives it.
    assert rig.click(rig.alice, slack_blocks.RESOLVE, alert_id, "res").status_code == 200
    wait_for("the resolve", lambda: rig.alert(alert_id)["status"] == "resolved")
    wait_for(
        "the resolution notice", lambda: any("RESOLVED" in m["text"] for m in channel.messages)
    )
    wait_for("the card without buttons", lambda: not _actions(pinned))
    run_cli(
        [
            "--database-url", sqlite_url, "postmortem", str(alert_id),
            "--link", "https://wiki.credlink.example/pm/1", "--as", "alice",
        ],
        clean_env(),
        rig.tmp,
    )  # fmt: skip
    wait_for("the channel archived", lambda: channel.archived)
    assert any("https://wiki.credlink.example/pm/1" in m["text"] for m in channel.messages)
    assert len(rig.slack.ok_calls("conversations.create")) == 1


def test_forged_stale_and_unknown_requests_change_nothing(rig: Rig, sqlite_url: str) -> None:
    # #incidents configured by name (looked up once: conversations.* want IDs).
    rig.start(sqlite_url, channels={"incidents": "#incidents", "alerts": rig.alerts_channel})
    alert_id = rig.fire("PaymentsDown")
    wait_for("the incident channel", lambda: rig.incident_channel(alert_id))
    wait_for("the page in #incidents", lambda: rig.slack.channels[rig.incidents].messages)

    def timeline_kinds() -> list[str]:
        return [t["kind"] for t in rig.alert(alert_id)["timeline"]]

    # Signed with the wrong secret; a valid signature five and a half minutes old.
    forged = rig.click(rig.alice, slack_blocks.ACK, alert_id, "f1", secret="not-the-secret")
    stale = rig.click(rig.alice, slack_blocks.ACK, alert_id, "f2", timestamp=int(time.time()) - 330)
    unsigned = httpx.post(f"{rig.url}/slack/interactions", data={"payload": "{}"}, timeout=30)
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (403, 403, 403)
    for text in ("ack all", "resolve 1"):
        assert rig.command(rig.alice, text, secret="nope").status_code == 403
        assert rig.command(rig.alice, text, timestamp=int(time.time()) - 600).status_code == 403
    # A properly signed click by a Slack user who is not on the roster: refused, ephemerally.
    unknown = rig.click(rig.stranger, slack_blocks.RESOLVE, alert_id, "who")
    assert unknown.status_code == 200
    refusal = wait_for("the refusal", lambda: rig.slack.responses_to("who"))
    assert refusal[0]["response_type"] == "ephemeral" and "not on escalator" in refusal[0]["text"]
    command = rig.command(rig.stranger, "ack all").json()
    assert command["response_type"] == "ephemeral" and "not on escalator" in command["text"]
    assert rig.slack.responses_to("f1") == [] and rig.slack.responses_to("f2") == []
    # A body over 64 KiB (server.max_api_body_bytes) is refused unread, signed or not: 413
    # from the edge guard (web/limits.py), as on every endpoint.
    huge = rig.post_signed(
        "/slack/commands", {"text": "list", "user_id": rig.alice, "x": "y" * 70_000}
    )
    assert huge.status_code == 413
    # The status-update modal submitted by the unknown user: an error in the form, no update.
    submission = {
        "type": "view_submission",
        "user": {"id": rig.stranger},
        "view": {
            "callback_id": slack_blocks.UPDATE_VIEW,
            "private_metadata": str(alert_id),
            "state": {"values": {"impact": {"value": {"value": "I was not here"}}}},
        },
    }
    refused = rig.post_signed("/slack/interactions", {"payload": json.dumps(submission)}).json()
    assert (
        refused["response_action"] == "errors" and "not on escalator" in refused["errors"]["impact"]
    )
    # Nothing changed: still triggered, no ack or resolve on the timeline, and the rejected
    # requests made no Slack call (only the user lookup of the unknown user).
    shown = rig.alert(alert_id)
    assert shown["status"] == "triggered"
    assert not {"acknowledged", "resolved", "status_update"} & set(timeline_kinds())
    looked_up = [c.args.get("user") for c in rig.slack.calls_of("users.info")]
    assert looked_up == [rig.stranger]

    # The slash command, signed, by alice: list, oncall, ack, update (ephemeral answers).
    listed = rig.command(rig.alice, "list").json()
    assert (
        listed["response_type"] == "ephemeral"
        and f"#{alert_id} [CRITICAL] PaymentsDown" in (listed["text"])
    )
    assert "alice" in rig.command(rig.alice, "oncall").json()["text"]
    assert "Usage" in rig.command(rig.alice, "ack twelve").json()["text"]
    # bob acknowledges: he becomes the incident commander and is invited to the channel.
    acked = rig.command(rig.bob, f"ack {alert_id}").json()
    assert acked["response_type"] == "ephemeral" and f"#{alert_id}" in acked["text"]
    shown = rig.alert(alert_id)
    assert (shown["status"], shown["acked_by"]) == ("acknowledged", "bob")
    channel = rig.incident_channel(alert_id)
    wait_for("the commander invited", lambda: rig.bob in channel.members)
    assert channel.members == {BOT_USER, rig.alice, rig.erin, rig.bob}
    update = rig.command(rig.bob, f"update {alert_id} Rolled back the deploy").json()
    assert "Update recorded" in update["text"]
    wait_for(
        "the update in the incident channel",
        lambda: any("Rolled back the deploy" in m["text"] for m in channel.messages),
    )


def test_rate_limits_lost_answers_and_dead_channels(rig: Rig, sqlite_url: str) -> None:
    # #alerts is mapped to a channel that does not exist: warnings fall back to the console.
    rig.slack.fail("chat.postMessage", "ratelimited", retry_after=3)
    # The first create makes the channel but its answer is lost (HTTP 500): the retry gets
    # `name_taken` and must find that channel, not make a second one.
    rig.slack.fail("conversations.create", "internal_error", status=500, after_work=True)
    rig.start(
        sqlite_url,
        channels={"incidents": rig.incidents, "alerts": "C0MISSING"},
        max_retry_after="1s",  # Retry-After 3 s is longer: the outbox waits it out
    )
    alert_id = rig.fire("PaymentsDown")
    channel = wait_for("the incident channel", lambda: rig.incident_channel(alert_id))
    wait_for("the pinned notice", lambda: channel.pins)
    creates = rig.slack.calls_of("conversations.create")
    assert [c.error for c in creates] == ["internal_error", "name_taken"]
    assert sum(c.name == channel.name for c in rig.slack.channels.values()) == 1
    assert channel.members == {BOT_USER, rig.alice, rig.erin}

    posts = rig.slack.calls_of("chat.postMessage")
    first = posts[0]
    assert first.error == "ratelimited"
    key = first.args["metadata"]["event_payload"]["key"]

    def same(call: Any) -> bool:
        return call.args["metadata"]["event_payload"]["key"] == key

    retried = wait_for("the retry of the rate-limited post", lambda: [
        c for c in rig.slack.calls_of("chat.postMessage")[1:] if same(c)
    ])  # fmt: skip
    # Nothing was posted to Slack before Retry-After passed, and the post went out once.
    assert all(c.at - first.at >= 3.0 for c in rig.slack.calls_of("chat.postMessage")[1:])
    assert [c.error for c in retried] == [None]
    keys = [
        m["metadata"]["event_payload"]["key"]
        for c in rig.slack.channels.values()
        for m in c.messages
    ]
    assert len(keys) == len(set(keys)), "a message was posted twice"

    # channel_not_found: the warning goes to the console, and the timeline says so.
    warning = rig.fire("DiskFilling", severity="warning")
    shown = wait_for(
        "the console fallback",
        lambda: (
            (a := rig.alert(warning))
            and any("falling back to console" in t["detail"] for t in a["timeline"])
            and a
        ),
    )
    failed = [t for t in shown["timeline"] if t["kind"] == "send_failed"]
    assert "channel_not_found" in failed[0]["detail"]
    wait_for("the console line", lambda: f"#{warning} DiskFilling" in rig.daemons[0].stdout())

    # invalid_auth: /readyz stays 200 (a shared token would take every replica out of
    # service, SMS and voice with it) but names the problem, and the gauge says 1, until a
    # call works again.
    def ready() -> dict[str, Any]:
        answer = httpx.get(f"{rig.url}/readyz", timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def gauge() -> str:
        text = httpx.get(f"{rig.url}/metrics", timeout=10).text
        return next(line for line in text.splitlines() if line.startswith("escalator_slack_auth"))

    assert "degraded" not in ready() and gauge().endswith(" 0.0")
    good, rig.slack.bot_token = rig.slack.bot_token, "xoxb-revoked"
    rig.click(rig.alice, slack_blocks.ACK, alert_id, "auth")  # the user lookup hits Slack
    degraded = wait_for("readyz to say degraded", lambda: ready().get("degraded"))
    assert "invalid_auth" in degraded[0] and gauge().endswith(" 1.0")
    rig.slack.bot_token = good
    rig.click(rig.alice, slack_blocks.ACK, alert_id, "auth2")
    wait_for("readyz to recover", lambda: "degraded" not in ready())
    assert gauge().endswith(" 0.0")


def test_three_replicas_create_one_incident_channel(rig: Rig) -> None:
    with fresh_database(prefix="escalator_slack") as url:
        daemons = rig.start(url, replicas=3)
        urls = [d.url for d in daemons]
        # Each firing reaches all three replicas, as from clustered Alertmanager peers.
        alert_id = rig.fire("PaymentsDown", urls=urls)
        channel = wait_for("the incident channel", lambda: rig.incident_channel(alert_id))
        wait_for("the pinned notice", lambda: channel.pins)
        # A few more ticks of all three replicas: nothing more may appear.
        time.sleep(3)
        incident_channels = [
            c for c in rig.slack.channels.values() if c.name.startswith("incident-")
        ]
        assert [c.name for c in incident_channels] == [channel.name]
        assert len(rig.slack.calls_of("conversations.create")) == 1
        assert len(channel.pins) == 1
        assert channel.members == {BOT_USER, rig.alice, rig.erin}
        keys = [m["metadata"]["event_payload"]["key"] for m in channel.messages]
        keys += [
            m["metadata"]["event_payload"]["key"]
            for m in rig.slack.channels[rig.incidents].messages
        ]
        assert len(keys) == len(set(keys)), "a replica posted a message twice"
        for daemon in daemons:
            assert daemon.alive(), daemon.stderr()
            daemon.stop()


def test_escalate_now_snooze_and_a_cli_resolve(rig: Rig, sqlite_url: str) -> None:
    rig.start(sqlite_url)
    alert_id = rig.fire("CacheDown")
    channel = wait_for("the incident channel", lambda: rig.incident_channel(alert_id))
    wait_for("the pinned notice", lambda: channel.pins)
    pinned = next(m for m in channel.messages if m["ts"] == channel.pins[0])

    assert rig.click(rig.erin, slack_blocks.ESCALATE, alert_id, "esc").status_code == 200
    shown = wait_for("the escalation", lambda: (a := rig.alert(alert_id))["level"] == 1 and a)
    escalated = [t for t in shown["timeline"] if t["kind"] == "escalated_manually"]
    assert escalated and escalated[0]["actor"] == "erin" and escalated[0]["channel"] == "slack"
    wait_for("the card showing level 1", lambda: _shows(pinned, "escalation level 1"))
    assert "escalated to level 1" in rig.slack.responses_to("esc")[0]["text"]

    assert rig.click(rig.alice, slack_blocks.SNOOZE, alert_id, "zzz").status_code == 200
    shown = wait_for(
        "the snooze", lambda: (a := rig.alert(alert_id))["status"] == "acknowledged" and a
    )
    acked_at = datetime.fromisoformat(shown["acked_at"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(shown["ack_expires_at"].replace("Z", "+00:00"))
    assert until - acked_at == timedelta(minutes=30)
    wait_for("the card showing the snooze", lambda: _shows(pinned, "snoozed until"))

    # A resolve typed in a terminal (the CLI on the database with the config file but no
    # Slack token) updates the Slack cards too: the daemon carries the update out.
    config = str(rig.tmp / "escalator.yaml")
    run_cli(
        [
            "--config",
            config,
            "--database-url",
            sqlite_url,
            "resolve",
            str(alert_id),
            "--as",
            "alice",
        ],
        clean_env(),
        rig.tmp,
    )
    wait_for("the card showing the resolve", lambda: _shows(pinned, "RESOLVED"))
    assert not _actions(pinned)
