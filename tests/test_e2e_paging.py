"""End to end with real paging: Alertmanager -> `escalator serve` -> Twilio, SMTP and chat.

The end-to-end test of issue 3: the same real processes as test_e2e_alertmanager.py (the
`escalator serve` daemon, Debian's Alertmanager, the CLI), but the daemon pages through
its real channels, each pointed at a loopback fake running in this test process: the real
twilio SDK talks to the fake Twilio REST API (`channels.twilio.api_base_url`), email goes
over STARTTLS with AUTH to an aiosmtpd sink whose self-signed certificate the daemon trusts
through `ca_file`, and chat posts go to a fake Slack-compatible webhook. The fake Twilio
then plays the on-call person's phone: it answers the page by SMS with a request signed
exactly as Twilio signs it, to the URL Twilio would be given (`server.public_url` +
/twilio/sms).

Time is compressed by rewriting the shipped config/escalator.yaml: the critical policy's
minutes become 3 s (the engineering lead at 15 s), and each person's voice call follows the
SMS after VOICE_AFTER instead of a minute. Secrets reach the daemon through the environment,
as the README configures them. Every wait polls with a generous timeout; where the outcome
could depend on how fast a noisy machine runs, the test reads the recorded times and checks
what must follow from them rather than assuming an order.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from twilio.request_validator import RequestValidator

from escalator.config import Config, load_config
from escalator.config.durations import parse_duration
from escalator.roster.oncall import recipients
from tests.fakes.fake_chat import FakeChat
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.smtp_sink import SmtpSink
from tests.support.e2e import Stack, start_stack
from tests.support.helpers import SHIPPED_CONFIG
from tests.support.ports import free_port
from tests.support.processes import (
    ManagedProcess,
    clean_env,
)

# Critical: 5 min -> 15 s. The SMS ack normally lands within a few seconds of the page, so
# well before the engineering lead (level 1, 15 s) and the voice call (VOICE_AFTER).
CRITICAL_SCALE = 1 / 20
VOICE_AFTER = "10s"
ACCOUNT_SID = "AC" + "e2e0" * 8
FROM_NUMBER = "+15550109999"
STRANGER = "+15550199999"  # on nobody's roster entry
ALERTNAME = "E2EPagingPaymentsDown"


def _scaled(value: Any, factor: float) -> str:
    """A YAML duration (`5m`, or seconds) times `factor`, in milliseconds."""
    delta = timedelta(seconds=value) if isinstance(value, int | float) else parse_duration(value)
    return f"{round(delta.total_seconds() * factor * 1000)}ms"


def paging_config(path: Path, public_url: str, twilio: FakeTwilio, smtp: SmtpSink) -> Config:
    """The shipped config with real channels pointed at the fakes, critical time compressed."""
    data: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    data["engine"] = {**data.get("engine", {}), "tick_interval": "250ms"}
    data["server"]["public_url"] = public_url
    critical = data["policies"]["critical"]
    for step in critical["steps"]:
        step["after"] = _scaled(step.get("after", 0), CRITICAL_SCALE)
    for key in ("response_time", "ack_timeout"):
        if critical.get(key) is not None:
            critical[key] = _scaled(critical[key], CRITICAL_SCALE)
    if critical.get("repeat"):
        critical["repeat"]["every"] = _scaled(critical["repeat"]["every"], CRITICAL_SCALE)
    for person in data["people"]:
        # The default rules with the voice call's minute compressed.
        person["rules"] = {
            "page": [
                {"method": "sms"},
                {"method": "voice", "after": VOICE_AFTER},
                {"method": "email"},
            ],
            "notify": [{"method": "email"}],
        }
    data["channels"] = {
        "twilio": {
            "account_sid": ACCOUNT_SID,  # not a secret (a pattern-checked id in the config)
            "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
            "from_number": FROM_NUMBER,
            "sms": True,
            "voice": True,
            "api_base_url": twilio.base_url,  # test only: the SDK talks to the fake
        },
        "email": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "starttls",
            "username": smtp.username,
            "password": {"env": "SMTP_PASSWORD"},
            "from_address": "escalator@credlink.example",
            "ca_file": str(smtp.cert),
        },
        "chat": {
            "webhooks": {
                name: {"env": f"SLACK_WEBHOOK_{name.upper()}"}
                for name in ("incidents", "alerts", "info")
            }
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


class Fakes:
    """The loopback fakes, started in this process."""

    def __init__(self, folder: Path, escalator_url: str):
        self.twilio_token = secrets.token_hex(16)
        self.twilio = FakeTwilio(ACCOUNT_SID, self.twilio_token, escalator_url).start()
        self.smtp = SmtpSink(folder, free_port(), password=secrets.token_hex(8)).start()
        self.chat = FakeChat().start()

    def stop(self) -> None:
        for stop in (self.twilio.stop, self.smtp.stop, self.chat.stop):
            try:
                stop()
            except Exception as exc:  # keep stopping the others; the failure is printed
                print(f"stopping a fake failed: {exc!r}")


@pytest.fixture
def paging_stack(tmp_path: Path) -> Iterator[Callable[[str], tuple[Stack, Fakes]]]:
    """The fakes, then `escalator serve` paging them, then Alertmanager in front of it.

    Only the daemon gets the channel secrets: the CLI calls (Stack.cli) run without them,
    as read commands such as `escalator show` must work without paging credentials.
    """
    started: list[ManagedProcess] = []
    fakes: list[Fakes] = []

    def make(database_url: str) -> tuple[Stack, Fakes]:
        escalator_port = free_port()
        public_url = f"http://127.0.0.1:{escalator_port}"
        fake = Fakes(tmp_path, public_url)
        fakes.append(fake)
        config_path = tmp_path / "escalator.yaml"
        config = paging_config(config_path, public_url, fake.twilio, fake.smtp)
        webhook_token, api_token = secrets.token_hex(16), secrets.token_hex(16)
        env = clean_env(
            ESCALATOR_WEBHOOK_TOKEN=webhook_token,
            ESCALATOR_API_TOKEN=api_token,
            TWILIO_AUTH_TOKEN=fake.twilio_token,
            SMTP_PASSWORD=fake.smtp.password,
            SLACK_WEBHOOK_INCIDENTS=fake.chat.url("/hooks/incidents"),
            SLACK_WEBHOOK_ALERTS=fake.chat.url("/hooks/alerts"),
            SLACK_WEBHOOK_INFO=fake.chat.url("/hooks/info"),
        )
        stack = start_stack(
            tmp_path, config_path, config, database_url, escalator_port, webhook_token,
            api_token, env, started,
        )  # fmt: skip
        return stack, fake

    try:
        yield make
    finally:
        # Alertmanager first (it must not post to a daemon going away), then the daemon
        # (it must not page fakes that are gone), then the fakes.
        for process in reversed(started):
            process.stop()
        for fake in fakes:
            fake.stop()


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _acks(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in shown["timeline"] if e["kind"] == "acknowledged"]


def test_critical_alert_paged_by_sms_email_chat_and_acked_by_sms_reply(
    paging_stack: Callable[[str], tuple[Stack, Fakes]], database_url: str
) -> None:
    """Page by SMS, email and #incidents; refuse strangers and bad signatures; ack by SMS
    reply (no voice call, no lead); resolve by Alertmanager. On SQLite and PostgreSQL."""
    stack, fakes = paging_stack(database_url)
    twilio, smtp, chat = fakes.twilio, fakes.smtp, fakes.chat
    policy = stack.config.policies["critical"]
    # The scenario rests on the shipped matrix: the on-call rotation and #incidents at
    # once, the engineering lead only while nobody has acknowledged.
    assert policy.steps[1].condition == "unacknowledged"

    with stack.dump_logs_on_failure():
        # Who the shipped roster puts on call now (a weekly rotation: the same person for
        # the few seconds this test runs, barring a handoff at exactly this moment).
        level0 = recipients(stack.config, policy.steps[0], datetime.now(UTC))
        (oncall,) = [r.id for r in level0 if r.kind == "person"]
        person = stack.config.person(oncall)
        assert person is not None and person.phone and person.email
        lead_ids = {r.id for r in recipients(stack.config, policy.steps[1], datetime.now(UTC))}
        leads = [stack.config.person(i) for i in lead_ids - {oncall}]
        lead_phones = {p.phone for p in leads if p is not None and p.phone}
        assert lead_phones

        # 1. Prometheus fires; Alertmanager posts to escalator; escalator pages.
        fired_at = datetime.now(UTC).replace(microsecond=0)
        labels = {
            "alertname": ALERTNAME,
            "severity": "critical",
            "service": "payments",
            "instance": "payments-1:8080",
        }
        stack.post_alert(labels, fired_at, summary="payments API is down")

        sms = stack.wait_for(
            f"the page by SMS to {oncall} at the fake Twilio",
            lambda: next(iter(twilio.messages(person.phone)), None),
        )
        opened = stack.wait_for_alert(ALERTNAME)  # escalator list --all -o json
        alert_id = int(opened["id"])
        assert opened["policy"] == "critical"
        assert sms.from_ == FROM_NUMBER
        assert f"#{alert_id} {ALERTNAME}" in sms.body and "payments API is down" in sms.body
        assert f"ACK {alert_id}" in sms.body
        assert sms.status_callback == f"{stack.escalator.base_url}/twilio/sms/status"

        # Email at once too (the person's rules), over STARTTLS with AUTH.
        (mail,) = stack.wait_for(
            f"the page by email to {person.email}", lambda: smtp.to(person.email or "")
        )
        assert mail["Subject"].startswith(f"[CRITICAL] #{alert_id} {ALERTNAME}")
        assert mail["X-Escalator-Severity"] == "critical"
        assert all(smtp.tls_used), smtp.tls_used

        # The policy's {channel: incidents}: the page (the incident declaration may post
        # there too).
        def incidents_post() -> bool:
            return any(f"#{alert_id} {ALERTNAME}" in p["text"] for p in chat.to("/hooks/incidents"))

        stack.wait_for("the page in #incidents", incidents_post)
        assert chat.to("/hooks/alerts") == [] and chat.to("/hooks/info") == []

        # Twilio reports the SMS delivered, on the status callback escalator gave it.
        assert twilio.fire_status(sms.sid, "delivered").status_code == 200

        # 2. Nobody else can act on it: a number not on the roster ...
        stranger = twilio.reply_sms(STRANGER, "ACK ALL", to=FROM_NUMBER)
        assert stranger.status_code == 200, stranger.text
        assert "not on the escalator roster" in stranger.text
        # ... nor a request not signed with the account's auth token (a forged one, and a
        # correct signature by the wrong token), even from the on-call person's number.
        url = f"{stack.escalator.base_url}/twilio/sms"
        forged = {"From": person.phone, "To": FROM_NUMBER, "Body": f"ACK {alert_id}"}
        assert twilio.post_signed(url, forged, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
        wrong = RequestValidator("not-the-auth-token").compute_signature(url, forged)
        assert twilio.post_signed(url, forged, signature=wrong).status_code == 403
        assert twilio.post_signed(url, forged, signature="").status_code == 403
        still = stack.polled_show(alert_id)
        assert still["status"] == "triggered" and _acks(still) == [], still

        # 3. The on-call person answers the page from their phone.
        reply = twilio.reply_sms(person.phone, f"ack {alert_id}", to=FROM_NUMBER)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("application/xml")
        assert "<Response><Message>" in reply.text
        assert f"Acknowledged #{alert_id}" in reply.text

        shown = stack.show(alert_id)  # escalator show ID -o json, on the database
        assert shown["status"] == "acknowledged"
        assert shown["acked_by"] == oncall
        (ack,) = _acks(shown)
        assert (ack["actor"], ack["channel"]) == (oncall, "sms")
        (page,) = [
            n for n in shown["notifications"] if n["recipient"] == oncall and n["method"] == "sms"
        ]
        assert page["status"] == "delivered", page  # from the status callback
        acked_at = _iso(ack["at"])

        # The voice call the rules scheduled VOICE_AFTER the SMS: cancelled by the ack.
        (voice,) = [
            n for n in shown["notifications"] if n["recipient"] == oncall and n["method"] == "voice"
        ]
        voice_due = _iso(voice["due_at"])
        if acked_at < voice_due:  # the usual case, by several seconds
            assert voice["status"] == "cancelled", voice
        else:  # a very slow machine: the call legitimately fell due before the ack
            assert voice["status"] in ("sent", "cancelled"), voice

        # 4. Level 1 (the engineering lead, 15 s in) comes due after the voice call was
        # due, and finds the alert acknowledged.
        def level1_decided() -> dict[str, Any] | None:
            now = stack.polled_show(alert_id)
            decided = any(
                (e["kind"] == "step_skipped" and "level 1 " in e["detail"])
                or (e["kind"] == "paged" and e["level"] == 1)
                for e in now["timeline"]
            )
            return now if decided else None

        stack.wait_for("level 1 to come due", level1_decided)
        shown = stack.show(alert_id)
        level1_due = _iso(shown["opened_at"]) + policy.steps[1].after
        assert voice_due <= level1_due
        lead_pages = [n for n in shown["notifications"] if n["level"] == 1]
        if acked_at < level1_due:  # the usual case: the lead is not paged at all
            assert lead_pages == [], lead_pages
            assert not any(e["kind"] == "paged" and e["level"] == 1 for e in shown["timeline"])
            for phone in lead_phones:
                assert twilio.messages(phone) == [] and twilio.calls(phone) == []
        if acked_at < voice_due:
            assert twilio.calls(person.phone) == [], twilio.calls(person.phone)
            (voice,) = [
                n
                for n in shown["notifications"]
                if n["recipient"] == oncall and n["method"] == "voice"
            ]
            assert voice["status"] == "cancelled" and voice["sent_at"] is None, voice
        # One SMS page only: no bundle or repeat re-sent it after the ack.
        assert [m.sid for m in twilio.messages(person.phone)] == [sms.sid]

        # 5. The service recovers: Alertmanager sends the resolved notification.
        stack.post_alert(labels, fired_at, ends_at=datetime.now(UTC) - timedelta(seconds=1))
        stack.wait_for(
            "Alertmanager's resolve to close the alert",
            lambda: stack.polled_show(alert_id)["status"] == "resolved",
        )
        final = stack.show(alert_id)
        assert (final["status"], final["resolved_by"]) == ("resolved", "alertmanager")
        assert final["next_action_at"] is None
        pages = [n for n in final["notifications"] if n["level"] is not None]
        assert all(n["status"] != "pending" for n in pages), pages
        # The incident's resolution notice reaches #incidents through the chat webhook.
        stack.wait_for(
            "the resolution notice in #incidents",
            lambda: any("RESOLVED" in p["text"] for p in chat.to("/hooks/incidents")),
        )
        # The stranger's ACK ALL changed nothing at any point: the only ack is the person's.
        assert [(e["actor"], e["channel"]) for e in _acks(final)] == [(oncall, "sms")]
