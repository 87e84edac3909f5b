"""Acknowledgement from the phone, end to end over loopback: the real twilio SDK sends to
the fake Twilio API, and the fake plays the phone against escalator's real HTTP app
(uvicorn) with X-Twilio-Signature signed requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from escalator.incidents.templates import sms_segments
from tests.support.ports import free_port
from tests.support.rig import ALICE, BOB, FROM_NUMBER, Rig, paging_rig


@pytest.fixture
def rig(sqlite_url: str, tmp_path: Path) -> Iterator[Rig]:
    rig = paging_rig(sqlite_url, tmp_path, free_port(), free_port())
    try:
        yield rig
    finally:
        rig.close()


def test_sms_at_once_then_voice_after_a_minute_then_keypress_acknowledges(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    (sms,) = rig.twilio.messages(ALICE)
    assert sms.from_ == FROM_NUMBER
    assert f"#{alert_id} HighErrorRate" in sms.body and f"ACK {alert_id}" in sms.body
    # Issue 12: the runbook link is in the SMS itself, within two segments.
    assert "Runbook: https://runbooks.example/high-error-rate" in sms.body
    assert sms_segments(sms.body) <= 2
    assert sms.status_callback == f"{rig.public_url}/twilio/sms/status"
    (mail,) = rig.smtp.to("alice@example.com")  # email at once too, over STARTTLS + auth
    assert mail["Subject"].startswith(f"[CRITICAL] #{alert_id} HighErrorRate")
    assert "https://runbooks.example/high-error-rate" in mail.get_payload()
    assert rig.smtp.tls_used == [True]
    # The policy's {channel: incidents} (other notices, such as the incident declaration,
    # may post there too).
    assert any(f"#{alert_id} HighErrorRate" in c["text"] for c in rig.chat.to("/hooks/incidents"))
    assert rig.twilio.calls() == []

    rig.advance(seconds=59)
    assert rig.twilio.calls() == []  # voice waits for its minute
    rig.advance(seconds=1)
    (call,) = rig.twilio.calls(ALICE)
    assert parse_qs(urlparse(call.url).query)["alerts"] == [str(alert_id)]

    listened, answered = rig.twilio.answer_call(call, "1")
    assert "Press 1 to acknowledge" in listened and "HighErrorRate" in listened
    assert "Acknowledged 1 alert" in answered
    alert = rig.alert(alert_id)
    assert (alert.status, alert.acked_by, alert.ack_via) == ("acknowledged", "alice", "voice")
    kinds = [t.kind for t in rig.timeline(alert_id)]
    sent = {t.channel for t in rig.timeline(alert_id) if t.kind == "sent"}
    assert {"sms", "email", "chat", "voice"} <= sent
    assert "acknowledged" in kinds


def test_ack_by_sms_reply_cancels_the_voice_call(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    reply = rig.twilio.reply_sms(ALICE, f"ack {alert_id}", to=FROM_NUMBER)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/xml")
    assert f"Acknowledged #{alert_id}" in reply.text and "<Message>" in reply.text
    alert = rig.alert(alert_id)
    assert (alert.status, alert.acked_by, alert.ack_via) == ("acknowledged", "alice", "sms")
    # Twilio retries webhooks: the same reply again changes nothing.
    again = rig.twilio.reply_sms(ALICE, f"ACK {alert_id}")
    assert "already acknowledged" in again.text
    rig.advance(minutes=2)
    assert rig.twilio.calls() == []  # the voice page was cancelled by the ack
    (voice,) = rig.outbox(alert_id=alert_id, method="voice")
    assert voice.status == "cancelled"
    # RESOLVE works the same way.
    done = rig.twilio.reply_sms(ALICE, f"Resolve #{alert_id}")
    assert f"Resolved #{alert_id}" in done.text
    assert rig.alert(alert_id).status == "resolved"


def test_keypress_9_escalates_now_and_says_so(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    rig.advance(minutes=1)
    (call,) = rig.twilio.calls(ALICE)
    _, answered = rig.twilio.answer_call(call, "9")
    assert "Escalating 1 alert now" in answered
    rig.step()
    assert rig.alert(alert_id).level == 1
    assert [m.body for m in rig.twilio.messages(BOB)]  # the next level (bob) was paged
    escalated = [t for t in rig.timeline(alert_id) if t.kind == "escalated_manually"]
    assert escalated and escalated[0].actor == "alice" and escalated[0].channel == "voice"


def test_ack_all_acknowledges_every_alert_of_a_bundle(rig: Rig) -> None:
    ids = rig.fire_new(3)
    rig.step()
    (sms,) = rig.twilio.messages(ALICE)  # three pages due together: one message
    assert "3 alerts" in sms.body and "ACK ALL" in sms.body
    for alert_id in ids:
        assert f"#{alert_id} HighErrorRate" in sms.body
    (mail,) = rig.smtp.to("alice@example.com")
    assert "3 alerts" in mail["Subject"]
    rows = rig.outbox(recipient="alice", method="sms")
    assert {r.provider_id for r in rows} == {sms.sid} and {r.status for r in rows} == {"sent"}

    reply = rig.twilio.reply_sms(ALICE, "ack all")
    assert all(f"#{i}" in reply.text for i in ids)
    assert {(a.id, a.status, a.acked_by) for a in rig.alerts()} == {
        (i, "acknowledged", "alice") for i in ids
    }


def test_bare_ack_acknowledges_the_last_sms_page(rig: Rig) -> None:
    first = rig.fire_new(2)
    rig.step()
    reply = rig.twilio.reply_sms(ALICE, "ACK")
    assert "Acknowledged" in reply.text
    assert {rig.alert(i).status for i in first} == {"acknowledged"}


def test_unknown_number_cannot_act(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    reply = rig.twilio.reply_sms("+15550177777", f"ACK {alert_id}")
    assert reply.status_code == 200
    assert "not on the escalator roster" in reply.text
    all_ = rig.twilio.reply_sms("+15550177777", "ACK ALL")
    assert "nothing was changed" in all_.text
    assert rig.alert(alert_id).status == "triggered"
    # A call answered from a number not on the roster cannot acknowledge either.
    rig.advance(minutes=1)
    (call,) = rig.twilio.calls(ALICE)
    call.to = "+15550177777"
    listened = rig.twilio.answer_call(call, None)
    assert "not on the roster" in listened[0]
    assert rig.alert(alert_id).status == "triggered"


def test_bad_signature_is_refused_with_403_and_changes_nothing(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    url = f"{rig.public_url}/twilio/sms"
    params = {"From": ALICE, "Body": f"ACK {alert_id}", "MessageSid": "SM" + "0" * 32}
    forged = rig.twilio.post_signed(url, params, signature="bm90IGEgc2lnbmF0dXJl")
    assert forged.status_code == 403
    missing = rig.twilio._http.post(url, data=params)
    assert missing.status_code == 403
    # Signed for other parameters (a replayed signature with the body changed).
    other = rig.twilio.sign(url, {**params, "Body": "ACK 999"})
    assert rig.twilio.post_signed(url, params, signature=other).status_code == 403
    for path in ("/twilio/voice", "/twilio/voice/gather", "/twilio/sms/status"):
        refused = rig.twilio.post_signed(f"{rig.public_url}{path}", {"To": ALICE}, "x")
        assert refused.status_code == 403, path
    assert rig.alert(alert_id).status == "triggered"
    # The same request properly signed goes through.
    assert rig.twilio.post_signed(url, params).status_code == 200
    assert rig.alert(alert_id).status == "acknowledged"


def test_garbled_reply_gets_help_and_changes_nothing(rig: Rig) -> None:
    (alert_id,) = rig.fire_new()
    rig.step()
    reply = rig.twilio.reply_sms(ALICE, "what is going on")
    assert "did not understand" in reply.text and "ACK ALL" in reply.text
    assert rig.alert(alert_id).status == "triggered"
