"""Acknowledgement from the phone, end to end over loopback: the real twilio SDK sends to
the fake Twilio API, and the fake plays the phone against escalator's real HTTP app
(uvicorn) with X-Twilio-Signature signed requests.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from escalator.incidents.templates import sms_segments
from escalator.store.db import transaction
from escalator.store.tables import ProviderCallbackRow
from tests.fakes.fake_twilio import Sent
from tests.support.ports import free_port
from tests.support.rig import ACCOUNT_SID, ALICE, BOB, FROM_NUMBER, Rig, paging_rig


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


# Replays (issue 11): a signed request captured once must not act twice ----------------------


@pytest.fixture
def any_rig(database_url: str, tmp_path: Path) -> Iterator[Rig]:
    """The rig on both backends (the replay record's unique key is the store's job)."""
    rig = paging_rig(database_url, tmp_path, free_port(), free_port())
    try:
        yield rig
    finally:
        rig.close()


def _callbacks(rig: Rig) -> list[ProviderCallbackRow]:
    with transaction(rig.factory) as session:
        return list(session.scalars(select(ProviderCallbackRow)))


def _answer(rig: Rig, call: Sent) -> tuple[str, dict[str, str]]:
    """Answer `call` as Twilio does; returns its <Gather> action and the call's parameters."""
    params = {
        "CallSid": call.sid,
        "AccountSid": ACCOUNT_SID,
        "From": call.from_,
        "To": call.to,
        "Called": call.to,
        "CallStatus": "in-progress",
    }
    first = rig.twilio.post_signed(call.url, params)
    assert first.status_code == 200, first.text
    gather = ET.fromstring(first.text).find("Gather")
    assert gather is not None
    return gather.get("action", ""), params


def test_replayed_ack_all_sms_does_not_acknowledge_a_newer_alert(any_rig: Rig) -> None:
    rig = any_rig
    (first,) = rig.fire_new()
    rig.step()
    url = f"{rig.public_url}/twilio/sms"
    captured = {"MessageSid": "SM" + "a1" * 16, "From": ALICE, "To": FROM_NUMBER, "Body": "ACK ALL"}
    reply = rig.twilio.post_signed(url, captured)
    assert f"Acknowledged #{first}" in reply.text
    rig.advance(minutes=5)
    (second,) = rig.fire_new()
    rig.step()  # alice is paged for the new alert too
    assert rig.twilio.messages(ALICE)[-1].body.count(f"#{second}") >= 1

    replayed = rig.twilio.post_signed(url, captured)  # the same signed request, later
    assert replayed.status_code == 200
    assert replayed.headers["content-type"].startswith("application/xml")
    assert "<Message>" in replayed.text and "already handled" in replayed.text
    assert rig.alert(second).status == "triggered"
    assert [c.key for c in _callbacks(rig)] == [f"sms:{captured['MessageSid']}"]
    # A new message (its own MessageSid) does act: the refusal was the replay's alone.
    fresh = rig.twilio.reply_sms(ALICE, "ACK ALL")
    assert f"Acknowledged #{second}" in fresh.text
    assert rig.alert(second).status == "acknowledged"


def test_replayed_keypress_9_escalates_only_once(any_rig: Rig) -> None:
    rig = any_rig
    (alert_id,) = rig.fire_new()
    rig.step()
    rig.advance(minutes=1)
    (call,) = rig.twilio.calls(ALICE)
    action, params = _answer(rig, call)
    pressed = {**params, "Digits": "9"}
    answered = rig.twilio.post_signed(action, pressed)
    assert "Escalating 1 alert now" in answered.text
    rig.step()
    assert rig.alert(alert_id).level == 1
    bob_pages = len(rig.twilio.messages(BOB))
    assert bob_pages == 1

    for _ in range(3):  # the captured keypress, sent again
        again = rig.twilio.post_signed(action, pressed)
        assert again.status_code == 200 and "<Say" in again.text
        assert "already handled" in again.text
        rig.step()
    assert rig.alert(alert_id).level == 1
    assert len(rig.twilio.messages(BOB)) == bob_pages  # the last level was not paged again
    kinds = [t.kind for t in rig.timeline(alert_id)]
    assert kinds.count("escalated_manually") == 1
    # A replay of the call's TwiML request cannot refresh what the call offered either.
    _answer(rig, call)
    other = rig.twilio.post_signed(action, {**params, "Digits": "1"})
    assert "Acknowledged 0 alerts" in other.text and "changed since this call began" in other.text
    assert rig.alert(alert_id).status == "triggered"


def test_keypress_acts_only_on_the_level_the_call_offered(any_rig: Rig) -> None:
    rig = any_rig
    (alert_id,) = rig.fire_new()
    rig.step()
    rig.advance(minutes=1)
    (call,) = rig.twilio.calls(ALICE)
    action, params = _answer(rig, call)  # offered at level 0
    rig.advance(minutes=30)  # the policy moves on to bob meanwhile
    assert rig.alert(alert_id).level == 1
    bob_pages = len(rig.twilio.messages(BOB))
    late = rig.twilio.post_signed(action, {**params, "Digits": "9"})
    assert "Escalating 0 alerts now" in late.text and "1 changed since" in late.text
    rig.step()
    assert len(rig.twilio.messages(BOB)) == bob_pages
    assert "escalated_manually" not in [t.kind for t in rig.timeline(alert_id)]


def test_an_impossible_alert_number_gets_a_polite_reply(any_rig: Rig) -> None:
    rig = any_rig
    (alert_id,) = rig.fire_new()
    rig.step()
    reply = rig.twilio.reply_sms(ALICE, "ACK 99999999999999999999999")
    assert reply.status_code == 200, reply.text
    assert "No such alert: #99999999999999999999" in reply.text  # shown to 20 digits
    both = rig.twilio.reply_sms(ALICE, f"ACK 99999999999999999999999 {alert_id}")
    assert f"Acknowledged #{alert_id}" in both.text and "No such alert" in both.text
    assert rig.alert(alert_id).status == "acknowledged"


def test_old_callback_records_are_pruned(any_rig: Rig) -> None:
    rig = any_rig
    (alert_id,) = rig.fire_new()
    rig.step()
    rig.twilio.reply_sms(ALICE, f"ACK {alert_id}")
    rig.advance(days=6)
    rig.twilio.reply_sms(ALICE, f"ACK {alert_id}")
    assert len(_callbacks(rig)) == 2
    rig.advance(days=2)  # the first is now past the week's retention
    rig.twilio.reply_sms(ALICE, f"RESOLVE {alert_id}")
    kept = _callbacks(rig)
    assert len(kept) == 2 and min(c.received_at for c in kept) == rig.at(6 * 86400)


def test_ack_all_takes_only_alerts_whose_page_had_gone_out(any_rig: Rig) -> None:
    rig = any_rig
    (paged,) = rig.fire_new()
    rig.step()
    (queued,) = rig.fire_new()  # its SMS to alice is in the outbox, not yet sent
    reply = rig.twilio.reply_sms(ALICE, "ACK ALL")
    assert f"Acknowledged #{paged}." in reply.text and f"#{queued}" not in reply.text
    assert (rig.alert(paged).status, rig.alert(queued).status) == ("acknowledged", "triggered")
