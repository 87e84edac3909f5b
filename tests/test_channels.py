"""Each channel against its loopback fake, through the real client library: the twilio
SDK, smtplib with STARTTLS and AUTH against aiosmtpd, httpx against a chat webhook. What a
provider answers decides sent / retry / failed (the sender's retry and fallback rules).
Plus the secrets rule and `escalator test-page`.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalator.cli.main import main
from escalator.config import ConfigError, Secret, parse_config
from escalator.config import EmailChannel as EmailSettings
from escalator.config import TwilioChannel as TwilioSettings
from escalator.notify.channels.base import Delivery, Message
from escalator.notify.channels.chat import ChatChannel
from escalator.notify.channels.email import EmailChannel
from escalator.notify.channels.twilio_sms import TwilioSmsChannel, make_client
from escalator.notify.channels.twilio_voice import TwilioVoiceChannel
from escalator.notify.channels.webhook import WebhookChannel
from tests.fakes.fake_chat import FakeChat
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.smtp_sink import SmtpSink
from tests.support.ports import free_port
from tests.support.rig import ACCOUNT_SID, ALICE, AUTH_TOKEN, FROM_NUMBER

PUBLIC = "https://escalator.example"


def delivery(method: str, address: str | None) -> Delivery:
    return Delivery(
        id=7,
        alert_id=42,
        recipient_kind="person",
        recipient="alice",
        method=method,
        address=address,
        level=0,
        urgency="page",
        reason="escalation",
        attempts=1,
    )


MESSAGE = Message(
    42,
    "[CRITICAL] #42 HighErrorRate: 5xx above 5%",
    "5xx above 5%\nRunbook: https://runbooks.example/high-error-rate",
    "Reply ACK 42 to acknowledge, RESOLVE 42 to resolve",
    "critical",
    (42,),
)


@pytest.fixture
def twilio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


def twilio_settings(fake: FakeTwilio, tmp_path: Path) -> TwilioSettings:
    (tmp_path / "token").write_text(AUTH_TOKEN)
    return TwilioSettings(
        account_sid=ACCOUNT_SID,
        auth_token=Secret(file=tmp_path / "token"),
        from_number=FROM_NUMBER,
        api_base_url=fake.base_url,
    )


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path, free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


def email_channel(sink: SmtpSink, tmp_path: Path, password: str | None = None, **kw: object):  # type: ignore[no-untyped-def]
    (tmp_path / "smtp-pass").write_text(password or sink.password)
    settings = EmailSettings(
        host="127.0.0.1",
        port=sink.port,
        username=sink.username,
        password=Secret(file=tmp_path / "smtp-pass"),
        from_address="escalator@example.com",
        ca_file=sink.cert,
        **kw,  # type: ignore[arg-type]
    )
    return EmailChannel(settings)


# Twilio SMS and voice ---------------------------------------------------------------------


def test_sms_goes_through_the_real_sdk(twilio: FakeTwilio, tmp_path: Path) -> None:
    channel = TwilioSmsChannel(make_client(twilio_settings(twilio, tmp_path)), FROM_NUMBER, PUBLIC)
    result = channel.send(delivery("sms", ALICE), MESSAGE)
    assert result.outcome == "sent"
    (sms,) = twilio.messages(ALICE)
    assert result.provider_id == sms.sid and sms.sid.startswith("SM")
    assert sms.from_ == FROM_NUMBER
    assert sms.body.startswith("[CRITICAL] #42 HighErrorRate") and "ACK 42" in sms.body
    assert sms.status_callback == f"{PUBLIC}/twilio/sms/status"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(21211, "failed"), (21610, "failed"), (21614, "failed"), (20429, "retry"), (21201, "failed")],
)
def test_twilio_error_codes_decide_retry_or_fallback(
    twilio: FakeTwilio, tmp_path: Path, code: int, outcome: str
) -> None:
    twilio.fail_codes[ALICE] = code
    channel = TwilioSmsChannel(make_client(twilio_settings(twilio, tmp_path)), FROM_NUMBER, PUBLIC)
    result = channel.send(delivery("sms", ALICE), MESSAGE)
    assert (result.outcome, f"code {code}" in result.detail) == (outcome, True)


def test_twilio_5xx_and_unreachable_are_retried(twilio: FakeTwilio, tmp_path: Path) -> None:
    twilio.fail_rate = 1.0
    settings = twilio_settings(twilio, tmp_path)
    sms = TwilioSmsChannel(make_client(settings), FROM_NUMBER, PUBLIC)
    result = sms.send(delivery("sms", ALICE), MESSAGE)
    assert result.outcome == "retry" and "503" in result.detail
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = settings.model_copy(
            update={"api_base_url": f"http://127.0.0.1:{closed.getsockname()[1]}"}
        )
        result = TwilioSmsChannel(make_client(dead), FROM_NUMBER, PUBLIC).send(
            delivery("sms", ALICE), MESSAGE
        )
    assert result.outcome == "retry" and "unreachable" in result.detail


def test_voice_call_points_twilio_at_the_twiml_and_status_urls(
    twilio: FakeTwilio, tmp_path: Path
) -> None:
    channel = TwilioVoiceChannel(
        make_client(twilio_settings(twilio, tmp_path)), FROM_NUMBER, PUBLIC
    )
    bundle = Message(None, "2 alerts", "", "Press 1", "critical", (42, 43))
    result = channel.send(delivery("voice", ALICE), bundle)
    assert result.outcome == "sent"
    (call,) = twilio.calls(ALICE)
    assert call.url == f"{PUBLIC}/twilio/voice?alerts=42.43"
    assert call.status_callback == f"{PUBLIC}/twilio/voice/status"
    assert call.params["StatusCallbackEvent"] == "completed"


def test_inline_twilio_token_is_rejected() -> None:
    text = textwrap.dedent(
        f"""
        policies: {{p: {{steps: [{{targets: [{{person: a}}]}}]}}}}
        people: [{{id: a}}]
        channels:
          twilio:
            account_sid: {ACCOUNT_SID}
            auth_token: "0123456789abcdef"
            from_number: "{FROM_NUMBER}"
        """
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml")
    assert "channels.twilio.auth_token" in str(info.value)
    assert "0123456789abcdef" not in str(info.value)


# Email ----------------------------------------------------------------------------------


def test_email_over_starttls_with_auth(smtp: SmtpSink, tmp_path: Path) -> None:
    result = email_channel(smtp, tmp_path).send(delivery("email", "alice@example.com"), MESSAGE)
    assert result.outcome == "sent", result.detail
    ((sender, rcpts, mail),) = smtp.messages
    assert (sender, rcpts) == ("escalator@example.com", ["alice@example.com"])
    assert smtp.tls_used == [True]
    assert mail["Subject"] == "[CRITICAL] #42 HighErrorRate: 5xx above 5%"
    body = mail.get_payload()
    assert "https://runbooks.example/high-error-rate" in body and "ACK 42" in body
    assert result.provider_id == mail["Message-ID"]


@pytest.mark.parametrize(
    ("refusal", "outcome"),
    [((550, "5.1.1 no such user"), "failed"), ((451, "4.3.0 try later"), "retry")],
)
def test_smtp_4xx_retries_and_5xx_falls_back(
    smtp: SmtpSink, tmp_path: Path, refusal: tuple[int, str], outcome: str
) -> None:
    smtp.fail_rcpt["alice@example.com"] = refusal
    result = email_channel(smtp, tmp_path).send(delivery("email", "alice@example.com"), MESSAGE)
    assert (result.outcome, str(refusal[0]) in result.detail) == (outcome, True)
    assert smtp.messages == []


def test_smtp_wrong_password_and_no_starttls_are_permanent(smtp: SmtpSink, tmp_path: Path) -> None:
    wrong = email_channel(smtp, tmp_path, password="wrong")
    assert wrong.send(delivery("email", "alice@example.com"), MESSAGE).outcome == "failed"
    plain = email_channel(smtp, tmp_path, security="none")
    result = plain.send(delivery("email", "alice@example.com"), MESSAGE)
    assert result.outcome == "failed" and "AUTH" in result.detail  # offered only after TLS
    anonymous = EmailChannel(
        EmailSettings(
            host="127.0.0.1", port=smtp.port, security="none", from_address="e@example.com"
        )
    )
    result = anonymous.send(delivery("email", "alice@example.com"), MESSAGE)
    assert result.outcome == "failed" and "530" in result.detail  # the sink requires STARTTLS
    assert smtp.messages == []


def test_smtp_server_down_is_retried(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("x")
    channel = EmailChannel(
        EmailSettings(
            host="127.0.0.1", port=free_port(), from_address="e@example.com", timeout="5s"
        )
    )
    assert channel.send(delivery("email", "alice@example.com"), MESSAGE).outcome == "retry"


# Chat and generic webhook ------------------------------------------------------------------


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    fake = FakeChat().start()
    try:
        yield fake
    finally:
        fake.stop()


def channel_delivery(method: str, name: str) -> Delivery:
    d = delivery(method, name)
    return Delivery(**{**d.__dict__, "recipient_kind": "channel", "recipient": name})


def test_chat_posts_to_the_channels_webhook_and_classifies_answers(chat: FakeChat) -> None:
    channel = ChatChannel(
        {"incidents": chat.url("/T/incidents"), "alerts": chat.url("/T/alerts")}, 5
    )
    assert channel.send(channel_delivery("chat", "incidents"), MESSAGE).outcome == "sent"
    (post,) = chat.to("/T/incidents")
    assert post["text"].startswith(":rotating_light: *[CRITICAL] #42 HighErrorRate")
    assert chat.to("/T/alerts") == []
    chat.fail_next = [500, 429, 404]
    outcomes = [channel.send(channel_delivery("chat", "alerts"), MESSAGE).outcome for _ in "123"]
    assert outcomes == ["retry", "retry", "failed"]
    assert channel.send(channel_delivery("chat", "info"), MESSAGE).outcome == "failed"


def test_generic_webhook_posts_stable_json(chat: FakeChat) -> None:
    channel = WebhookChannel({"ops": chat.url("/ops")}, 5)
    assert channel.send(channel_delivery("webhook", "ops"), MESSAGE).outcome == "sent"
    (body,) = chat.to("/ops")
    assert body["version"] == 1 and body["alert_ids"] == [42]
    assert body["title"] == MESSAGE.title and body["severity"] == "critical"
    chat.fail_next = [503]
    assert channel.send(channel_delivery("webhook", "ops"), MESSAGE).outcome == "retry"


# escalator test-page -------------------------------------------------------------------------


def test_test_page_cli_sends_by_each_method(
    twilio: FakeTwilio, smtp: SmtpSink, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(AUTH_TOKEN)
    (tmp_path / "smtp").write_text(smtp.password)
    config = tmp_path / "escalator.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            server: {{public_url: "{PUBLIC}"}}
            people:
              - {{id: alice, phone: "{ALICE}", email: alice@example.com}}
              - {{id: bob, phone: "+15550100002"}}
            policies: {{p: {{steps: [{{targets: [{{person: alice}}]}}]}}}}
            channels:
              twilio:
                account_sid: {ACCOUNT_SID}
                auth_token: {{file: {tmp_path / "token"}}}
                from_number: "{FROM_NUMBER}"
                api_base_url: {twilio.base_url}
              email:
                host: 127.0.0.1
                port: {smtp.port}
                username: {smtp.username}
                password: {{file: {tmp_path / "smtp"}}}
                from_address: escalator@example.com
                ca_file: {smtp.cert}
            """
        )
    )
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config), "test-page", "alice"])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()] == [
        ["ok", "sms"],
        ["ok", "voice"],
        ["ok", "email"],
    ]
    (sms,) = twilio.messages(ALICE)
    assert "test page" in sms.body
    (call,) = twilio.calls(ALICE)
    assert "test page" in call.twiml and call.url == ""
    assert "test page" in smtp.to("alice@example.com")[0]["Subject"]
    assert AUTH_TOKEN not in result.output

    twilio.fail_codes["+15550100002"] = 21211
    failed = runner.invoke(main, ["--config", str(config), "test-page", "bob", "--method", "sms"])
    assert failed.exit_code == 1 and "21211" in failed.output
    no_email = runner.invoke(
        main, ["--config", str(config), "test-page", "bob", "--method", "email"]
    )
    assert no_email.exit_code == 1 and "no address for email" in no_email.output
    unknown = runner.invoke(main, ["--config", str(config), "test-page", "zed"])
    assert unknown.exit_code != 0 and "unknown person" in unknown.output
    json.dumps(result.output)  # plain text output, no secrets
