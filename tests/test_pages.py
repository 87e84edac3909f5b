"""What a page says (issue 12, "Pages"), rendered from the page templates (issue 9 item 6).

Through the daemon: the shipped config on a real store, the real console channel printing
into a buffer, time moved by hand. Per method: the renderer on alert rows, and the SMS
as the SMS channel composes it for Twilio (two segments, GSM-7 or UCS-2).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import yaml

from escalator.config import Config, TemplateSource, parse_config
from escalator.daemon import Daemon, build_daemon
from escalator.escalation.machine import Ack
from escalator.incidents.templates import sms_encoding, sms_segments
from escalator.ingest.alertmanager import AMWebhook, ingest
from escalator.notify.channels.base import Delivery
from escalator.notify.channels.console import ConsoleChannel
from escalator.notify.channels.twilio_sms import sms_text
from escalator.notify.message import Pages
from escalator.notify.templates import page_templates
from escalator.services.alerts import act
from escalator.store.clock import FixedClock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow
from tests.support.helpers import SHIPPED_CONFIG, T0, am_alert, am_body, at, shipped_config

# `[escalator] 2026-03-02T19:15:00Z PAGE dave (role devops) level 2: [CRITICAL] #1 ...`
_LINE = re.compile(
    r"^\[escalator\] (?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<kind>PAGE|NOTIFY) "
    r"(?P<who>.+?)(?: \((?P<via>[^)]*)\))?(?: level (?P<level>\d+))?: (?P<rest>.*)$"
)
SERVICE_DOWN = "https://runbooks.credlink.example/production#service-down"


class Console:
    """The daemon on a FixedClock with the real console channel writing into a buffer."""

    def __init__(self, database_url: str, config: Config | None = None) -> None:
        self.out = io.StringIO()
        self.clock = FixedClock(T0)
        self.daemon: Daemon = build_daemon(
            config or shipped_config(),
            database_url,
            clock=self.clock,
            channels={"console": ConsoleChannel(self.out)},
        )

    def fire(self, *alerts: dict[str, Any]) -> list[int]:
        now = self.clock.now()
        with transaction(self.daemon.factory) as session:
            result = ingest(
                session,
                AMWebhook.model_validate(am_body(*alerts)),
                self.daemon.config,
                self.daemon.paging(session, now),
                self.daemon.policies,
                now,
            )
        return list(result.opened)

    def act(self, ids: list[int], event: Any) -> None:
        now = self.clock.now()
        with transaction(self.daemon.factory) as session:
            act(session, ids, event, self.daemon.paging(session, now), self.daemon.policies, now)

    def walk_to(self, minute: float) -> None:
        """Tick and drain every 30 s up to `minute` after T0."""
        while True:
            self.daemon.engine.tick()
            self.daemon.sender.drain()
            if self.clock.now() >= at(minute):
                return
            self.clock.advance(seconds=30)

    def lines(self) -> list[str]:
        return [line for line in self.out.getvalue().splitlines() if line.startswith("[escalator]")]

    def pages(self) -> list[dict[str, str]]:
        found = [_LINE.match(line) for line in self.lines()]
        return [m.groupdict() for m in found if m and m["kind"] == "PAGE" and m["level"]]

    def close(self) -> None:
        self.daemon.stop()


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    rig = Console(database_url)
    try:
        yield rig
    finally:
        rig.close()


# Console lines -------------------------------------------------------------------------


def test_console_page_lines_carry_time_instance_and_runbook(console: Console) -> None:
    """Every console page: the time it was sent, the instance, the runbook link (here the
    configured runbook: the alert has no runbook_url annotation), how to acknowledge."""
    alert = am_alert(alertname="CredlinkServiceDown")
    del alert["annotations"]["runbook_url"]
    (alert_id,) = console.fire(alert)
    console.clock.advance(seconds=7)
    console.walk_to(0.2)
    pages = console.pages()
    assert {(p["who"], p["level"]) for p in pages} == {("alice", "0"), ("#incidents", "0")}
    for page in pages:
        assert page["at"] == "2026-03-02T19:00:07Z"
        assert page["rest"] == (
            f"[CRITICAL] #{alert_id} CredlinkServiceDown "
            "(instance=api-1.credlink.internal:8080): CredLink API is down"
            f" | Runbook: {SERVICE_DOWN} | acknowledge: escalator ack {alert_id}"
        )


def test_a_warning_on_the_console_carries_its_runbook_too(console: Console) -> None:
    (alert_id,) = console.fire(
        am_alert(alertname="HealthCheckSlowResponse", severity="warning", fingerprint="w1")
    )
    console.walk_to(0)
    lines = [line for line in console.lines() if f"#{alert_id} " in line]
    assert len(lines) == 2  # alice (notify) and #alerts
    for line in lines:
        assert "NOTIFY" in line and "[WARNING]" in line
        assert "| Runbook: https://runbooks.credlink.example/api-down |" in line  # annotation wins
        assert "(instance=api-w1.credlink.internal:8080)" in line


def test_a_later_level_of_an_acknowledged_alert_says_who_acked_and_why(console: Console) -> None:
    """The DevOps step (15 min, unresolved) of an alert alice acknowledged at 2 min: the page
    names the acknowledgement and the reason, and asks to resolve, not to acknowledge."""
    (alert_id,) = console.fire(am_alert())
    console.walk_to(2)
    console.act([alert_id], Ack(by="alice", via="sms"))
    console.walk_to(15)
    devops = [p for p in console.pages() if p["level"] == "2"]
    assert sorted(p["who"] for p in devops) == ["dana", "dave"]
    for page in devops:
        assert page["at"] == "2026-03-02T19:15:00Z" and page["via"] == "role devops"
        rest = page["rest"]
        assert "acknowledged by alice at 19:02 UTC via sms" in rest
        assert "paged: unresolved for 15m" in rest
        assert "Runbook: https://runbooks.credlink.example/api-down" in rest
        assert rest.endswith(f"already acknowledged; when fixed: escalator resolve {alert_id}")
        assert "escalator ack" not in rest
    # The level-0 page, before the ack, asked to acknowledge and gave no reason.
    (first,) = [p for p in console.pages() if p["who"] == "alice" and p["level"] == "0"]
    assert first["rest"].endswith(f"acknowledge: escalator ack {alert_id}")
    assert "paged:" not in first["rest"]


def test_a_page_after_a_snooze_ends_says_so(console: Console) -> None:
    (alert_id,) = console.fire(am_alert())
    console.walk_to(1)
    console.act([alert_id], Ack(by="alice", via="cli", until=at(11)))  # snooze for 10 min
    console.walk_to(11)
    again = [p for p in console.pages() if p["at"] == "2026-03-02T19:11:00Z"]
    assert [(p["who"], p["level"]) for p in again] == [("alice", "0"), ("#incidents", "0")]
    for page in again:
        assert "paged: snooze by alice ended at 19:11 UTC; triggered again" in page["rest"]
        assert page["rest"].endswith(f"acknowledge: escalator ack {alert_id}")


def test_an_incident_notice_is_printed_once_for_all_console_recipients(console: Console) -> None:
    """Shipped config, console only: the initial notice goes to #incidents, erin and the
    product manager's address; it is printed once, naming them in one line."""
    console.fire(am_alert())
    console.walk_to(0)
    declared = [line for line in console.lines() if "INCIDENT DECLARED" in line]
    assert declared == [
        "[escalator] 2026-03-02T19:00:00Z NOTIFY #incidents, erin, product@credlink.example: "
        "🚨 INCIDENT DECLARED 🚨"
    ]
    assert console.out.getvalue().count("Initial Assessment:") == 1
    assert "#product@" not in console.out.getvalue()


def test_the_multiple_critical_page_prints_its_hint_once(console: Console) -> None:
    for n in range(3):
        console.fire(am_alert(fingerprint=f"mc{n}", alertname=f"Down{n}"))
    console.walk_to(0)
    text = console.out.getvalue()
    assert "3 CRITICAL ALERTS OPEN AT ONCE" in text
    assert text.count("acknowledge all: escalator ack --all") == 1


# The renderer, per method ------------------------------------------------------------------


def _row(
    alert_id: int = 1,
    summary: str = "CredLink API is down on api-1:8080",
    status: str = "triggered",
    annotations: dict[str, str] | None = None,
    alertname: str = "CredlinkServiceDown",
) -> AlertRow:
    acked = status == "acknowledged"
    return AlertRow(
        id=alert_id,
        alertname=alertname,
        severity="critical",
        status=status,
        labels={"alertname": alertname, "severity": "critical", "instance": "api-1:8080"},
        annotations={"summary": summary, **(annotations or {})},
        generator_url=None,
        opened_at=T0,
        policy_name="critical",
        acked_by="alice" if acked else None,
        acked_at=T0 + timedelta(minutes=2) if acked else None,
        ack_via="sms" if acked else None,
        ack_expires_at=None,
    )


def _delivery(method: str, level: int = 0, **payload: Any) -> Delivery:
    return Delivery(
        id=1,
        alert_id=1,
        recipient_kind="person",
        recipient="dave",
        method=method,
        address="+15550100004",
        level=level,
        urgency="page",
        reason="escalation",
        attempts=1,
        payload={"via": "role devops", **payload},
    )


LEVEL_2 = {"step_after": 15 * 60_000, "step_condition": "unresolved"}
LONG = "The primary database refuses connections after failover; " * 8


@pytest.mark.parametrize("summary", ["CredLink API is down", LONG, "Ausfall – " + LONG])
@pytest.mark.parametrize("status", ["triggered", "acknowledged"])
def test_sms_carries_the_runbook_and_the_reply_within_two_segments(
    summary: str, status: str
) -> None:
    pages = Pages.from_config(shipped_config())
    message = pages.render(_row(summary=summary, status=status), _delivery("sms", 2, **LEVEL_2))
    body = sms_text(message)  # what the SMS channel hands Twilio
    assert sms_segments(body) <= 2, (sms_encoding(body), len(body))
    assert body.startswith("[CRITICAL] #1 CredlinkServiceDown\n")
    assert f"Runbook: {SERVICE_DOWN}" in body  # the configured runbook: no annotation
    if status == "acknowledged":
        assert "Acked by alice 19:02 UTC\nPaged: unresolved for 15m" in body
        assert body.endswith("Already acknowledged. Reply RESOLVE 1 when fixed")
        assert "ACK 1" not in body
    else:
        assert body.endswith("Reply ACK 1 to acknowledge, RESOLVE 1 to resolve")
    if summary == LONG:
        assert "The primary database refuses" in body and "..." in body  # cut, not dropped


def test_sms_prefers_the_alerts_runbook_url_annotation() -> None:
    pages = Pages.from_config(shipped_config())
    row = _row(annotations={"runbook_url": "https://wiki.example/checkout"})
    body = sms_text(pages.render(row, _delivery("sms")))
    assert "Runbook: https://wiki.example/checkout" in body and SERVICE_DOWN not in body


def test_every_method_carries_the_runbook_and_the_acknowledgement() -> None:
    pages = Pages.from_config(shipped_config())
    row = _row(status="acknowledged")
    for method in ("console", "email", "chat", "webhook", "sms"):
        message = pages.render(row, _delivery(method, 2, **LEVEL_2))
        text = f"{message.title}\n{message.body}"
        assert SERVICE_DOWN in text, method
        assert "alice" in text and "15m" in text, method
        assert "escalator ack" not in message.ack_hint and "ACK 1" not in message.ack_hint
    email = pages.render(row, _delivery("email", 2, **LEVEL_2))
    assert "Why you are paged (level 2): unresolved for 15m" in email.body
    assert "Immediate actions:\n  1. Check service status" in email.body


def test_bundles_carry_runbooks_and_ask_to_ack_only_what_is_open() -> None:
    pages = Pages.from_config(shipped_config())
    rows = [_row(1), _row(2, status="acknowledged"), _row(3, alertname="RedisHealthCheckFailed")]
    sms = sms_text(pages.render_bundle(rows, _delivery("sms")))
    assert sms_segments(sms) <= 2
    assert sms.startswith("[CRITICAL] 3 alerts: CredlinkServiceDown, RedisHealthCheckFailed\n")
    assert f"Runbook #1: {SERVICE_DOWN} (+1 more)" in sms
    assert "#2 CredlinkServiceDown (acked by alice)" in sms
    email = pages.render_bundle(rows, _delivery("email"))
    assert f"Runbook #1 #2: {SERVICE_DOWN}" in email.body
    assert "Runbook #3: https://runbooks.credlink.example/production#redis" in email.body
    assert email.ack_hint == "acknowledge: escalator ack 1 3"


def test_page_templates_are_overridable_per_method() -> None:
    """`channels.templates.<method>.<kind>`, like the notices' `incidents.templates`."""
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    override = "ALERT {{ alert.alertname }} #{{ alert.id }} {{ runbook.url }}"
    data.setdefault("channels", {})["templates"] = {"sms": {"page": {"text": override}}}
    config = parse_config(yaml.safe_dump(data))
    assert set(config.channels.templates["sms"]) == {"page"}
    pages = Pages.from_config(config)
    sms = pages.render(_row(), _delivery("sms"))
    assert sms.title == f"ALERT CredlinkServiceDown #1 {SERVICE_DOWN}"
    email = pages.render(_row(), _delivery("email"))  # other methods keep the shipped one
    assert email.title.startswith("[CRITICAL] #1 CredlinkServiceDown: ")
    # A broken override falls back to the shipped template instead of losing the page.
    nope = TemplateSource(text="{{ alert.nope.deeper }}")
    broken = Pages(page_templates({"sms": {"page": nope}}))
    assert broken.render(_row(), _delivery("sms")).title.startswith("[CRITICAL] #1 ")


def test_a_voice_call_speaks_the_template() -> None:
    pages = Pages.from_config(shipped_config())
    spoken = pages.spoken([_row(1), _row(2, status="acknowledged")])
    assert spoken == (
        "2 alerts. critical alert 1, CredlinkServiceDown. CredLink API is down on api-1:8080. "
        "critical alert 2, CredlinkServiceDown, already acknowledged by alice. "
        "CredLink API is down on api-1:8080."
    )
