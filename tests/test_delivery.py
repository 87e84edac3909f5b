"""Delivery that never loses a page, on SQLite and PostgreSQL: retries through a flaky
Twilio, fallback to the next contact method on permanent errors and failed status
callbacks, and bundling plus rate limits under an alert storm.

The real daemon (FixedClock, stepped by hand) sends through the real channels to the
loopback fakes; see tests/support/rig.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.fakes.fake_twilio import Sent
from tests.support.ports import free_port
from tests.support.rig import ALICE, T0, Rig, paging_rig

# Alice's page rules for the fallback tests: SMS now, voice after 1 min, email after 10.
SLOW_EMAIL = """
people:
  - id: alice
    name: Alice Oncall
    phone: "+15550100001"
    email: alice@example.com
    rules:
      page: [{method: sms}, {method: voice, after: 1m}, {method: email, after: 10m}]
  - id: bob
    phone: "+15550100002"
    email: bob@example.com
"""


@pytest.fixture
def make_rig(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**kwargs: object) -> Rig:
        rig = paging_rig(database_url, tmp_path, free_port(), free_port(), **kwargs)  # type: ignore[arg-type]
        rigs.append(rig)
        return rig

    try:
        yield make  # type: ignore[misc]
    finally:
        for rig in rigs:
            rig.close()


def _call_alerts(call: Sent) -> set[int]:
    spec = parse_qs(urlparse(call.url).query)["alerts"][0]
    return {int(x) for x in spec.split(".")}


def test_thirty_percent_of_twilio_requests_failing_loses_no_page(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(fail_rate=0.3)
    ids: list[int] = []
    for _ in range(10):
        ids += rig.fire_new()
        for _ in range(15):
            rig.advance(seconds=2)
    for _ in range(30):  # let retries and the (rate-limited) voice calls finish
        rig.advance(seconds=30)
    assert rig.twilio.injected_failures > 0
    texted = {i for i in ids for m in rig.twilio.messages(ALICE) if f"#{i} " in m.body}
    assert texted == set(ids)
    called = set().union(*(_call_alerts(c) for c in rig.twilio.calls(ALICE)))
    assert called == set(ids)
    rows = [r for r in rig.outbox(recipient="alice") if r.method in ("sms", "voice")]
    assert len(rows) == 20 and {r.status for r in rows} == {"sent"}
    retried = [t for i in ids for t in rig.timeline(i) if t.kind == "send_retry"]
    assert retried and all("twilio 503" in t.detail for t in retried)


def test_permanent_error_falls_back_to_the_next_method_at_once(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(people=SLOW_EMAIL)
    rig.twilio.fail_codes[ALICE] = 21211  # invalid 'To' number: SMS and voice both fail
    (alert_id,) = rig.fire_new()
    rig.step()
    assert rig.clock.now() == T0
    (mail,) = rig.smtp.to("alice@example.com")  # email was due at 10 min; sent now
    assert f"#{alert_id} HighErrorRate" in mail["Subject"]
    by_method = {r.method: r for r in rig.outbox(recipient="alice")}
    assert by_method["sms"].status == by_method["voice"].status == "failed"
    assert "21211" in (by_method["sms"].last_error or "")
    assert by_method["email"].status == "sent" and by_method["email"].sent_at == T0
    details = [t.detail for t in rig.timeline(alert_id) if t.kind == "send_failed"]
    assert any(d.startswith("sms to alice failed") and "trying voice now" in d for d in details)
    assert any(d.startswith("voice to alice failed") and "trying email now" in d for d in details)
    assert rig.twilio.messages() == [] and rig.twilio.calls() == []


def test_failed_status_callbacks_move_to_the_next_method(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig(people=SLOW_EMAIL)
    (alert_id,) = rig.fire_new()
    rig.step()
    (sms,) = rig.twilio.messages(ALICE)
    assert rig.twilio.calls() == []
    assert rig.twilio.fire_status(sms.sid, "sent").status_code == 200  # not final: no change
    assert rig.twilio.fire_status(sms.sid, "undelivered", 30003).status_code == 200
    rig.step()
    (call,) = rig.twilio.calls(ALICE)  # voice was due at 1 min; called at once
    assert rig.clock.now() == T0
    rig.twilio.fire_status(call.sid, "no-answer")
    rig.step()
    assert len(rig.smtp.to("alice@example.com")) == 1
    # Twilio retries callbacks: a repeated report changes nothing and sends nothing more.
    rig.twilio.fire_status(call.sid, "no-answer")
    rig.step()
    assert len(rig.smtp.to("alice@example.com")) == 1
    rig.advance(minutes=11)
    assert len(rig.smtp.to("alice@example.com")) == 1
    by_method = {r.method: r for r in rig.outbox(recipient="alice")}
    assert [by_method[m].status for m in ("sms", "voice", "email")] == ["failed", "failed", "sent"]
    timeline = [(t.kind, t.channel) for t in rig.timeline(alert_id)]
    assert timeline.count(("send_failed", "sms")) == 1
    assert timeline.count(("send_failed", "voice")) == 1


def test_delivered_status_is_recorded(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = make_rig()
    (alert_id,) = rig.fire_new()
    rig.step()
    (sms,) = rig.twilio.messages(ALICE)
    rig.twilio.fire_status(sms.sid, "delivered")
    rig.twilio.fire_status(sms.sid, "delivered")
    (row,) = rig.outbox(recipient="alice", method="sms")
    assert row.status == "delivered"
    delivered = [t for t in rig.timeline(alert_id) if t.kind == "delivered"]
    assert len(delivered) == 1 and delivered[0].channel == "sms"


def test_alert_storm_stays_within_the_rate_limit_and_every_alert_is_acknowledgeable(
    make_rig,  # type: ignore[no-untyped-def]
) -> None:
    rig = make_rig()
    limit = rig.config.channels.rate_limits["sms"]
    ids: list[int] = []
    new_incident: list[int] = []
    # 200 alerts of one incident in 20 waves 15 s apart; a different incident at 97 s.
    for wave in range(20):
        ids += rig.fire_new(10, alertname="DiskFull")
        rig.step()
        if wave == 6:
            rig.advance(seconds=7)
            new_incident = rig.fire_new(alertname="DatabaseDown")
            rig.step()
            rig.clock.advance(seconds=8)
        else:
            rig.clock.advance(seconds=15)
    for _ in range(30):
        rig.advance(seconds=30)  # to T0 + 20 min: every held page has gone out
    sms = rig.twilio.messages(ALICE)
    assert len(sms) <= 10, [m.body[:60] for m in sms]
    # No more than `max` messages in any window of `per`, except the new incident's page.
    message_times = sorted(
        {r.provider_id: r.sent_at for r in rig.outbox(recipient="alice", method="sms")}.values()
    )
    for t in message_times:
        inside = [u for u in message_times if t - limit.per < u <= t]
        assert len(inside) <= limit.max + 1, (t, inside)
    # The new incident's first page was not held back behind the storm.
    (db_row,) = rig.outbox(alert_id=new_incident[0], method="sms")
    assert db_row.sent_at == T0 + timedelta(seconds=6 * 15 + 7)
    # Every alert was paged (held pages folded into later bundles, none dropped)...
    rows = rig.outbox(recipient="alice", method="sms")
    assert {r.status for r in rows} == {"sent"} and len(rows) == 201
    held = [t for t in rig.timeline(ids[-1]) if t.kind == "send_held"]
    assert held and "rate limit" in held[0].detail
    # ...and ACK ALL from the phone acknowledges every one of them.
    reply = rig.twilio.reply_sms(ALICE, "ACK ALL")
    assert reply.status_code == 200 and "Acknowledged" in reply.text
    statuses = {(a.status, a.acked_by, a.ack_via) for a in rig.alerts()}
    assert statuses == {("acknowledged", "alice", "sms")}
    assert len(rig.alerts()) == 201
