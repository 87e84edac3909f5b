"""Incident templates: the seed's three as defaults, the SMS form within two segments,
per-channel overrides, and a broken override never stopping the engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError

from escalator.config import TemplateSource
from escalator.incidents.templates import (
    KINDS,
    Templates,
    fit_sms,
    sms_encoding,
    sms_segments,
    sms_units,
)
from escalator.notify.channels.base import Delivery
from escalator.notify.channels.twilio_sms import sms_text
from escalator.notify.message import prerendered

LONG = "The primary database refuses connections after failover; " * 12


def context(summary: str = "CredLink API is down", **extra: Any) -> dict[str, Any]:
    """What incidents.notices hands a template (same keys, made-up values)."""
    ctx: dict[str, Any] = {
        "service": "CredLink API",
        "now": "2026-03-02 19:30 UTC",
        "ack": "take command: escalator ack 12",
        "incident": {
            "id": 12,
            "channel": "#incident-20260302-1900-12",
            "opened": "2026-03-02 19:00 UTC",
            "commander": "alice",
            "status": "open",
            "status_word": "INVESTIGATING",
            "duration": "30m",
            "update_every": "15m",
            "last_update": "2026-03-02 19:20 UTC",
        },
        "alert": {
            "id": 12,
            "alertname": "CredlinkServiceDown",
            "severity": "CRITICAL",
            "summary": summary,
            "description": "",
            "status": "acknowledged",
            "level": 1,
        },
        "impact": ["CredLink API is completely unavailable", "All user requests are failing"],
        "current_status": "acknowledged by alice, investigating",
        "eta": "20:15 UTC",
        "runbook": {
            "url": "https://runbooks.credlink.example/production#service-down",
            "title": "Service Down",
            "immediate_actions": ["kubectl get pods -n credlink", "kubectl logs ..."],
        },
        "next_update": "2026-03-02 19:45 UTC",
        "update": {
            "message": summary,
            "author": "alice",
            "status": "IN PROGRESS",
            "eta": None,
            "at": "2026-03-02 19:30 UTC",
        },
        "progress": [],
        "since": "2026-03-02 19:00 UTC",
        "timeline": [{"at": "19:02", "text": "acknowledged by alice via sms"}],
        "resolution": {
            "at": "2026-03-02 19:42 UTC",
            "by": "alice via cli",
            "duration": "42m",
            "root_cause": ["bad deploy"],
            "actions": ["rolled back"],
        },
        "postmortem": {
            "due": "2026-03-03 19:42 UTC",
            "overdue": False,
            "late": "0s",
            "remaining": "24h",
        },
        "count": 3,
        "threshold": 3,
        "alerts": [
            {
                "id": i,
                "alertname": f"Alert{i}",
                "summary": summary,
                "status": "triggered",
                "level": 0,
                "since": "19:00",
            }
            for i in (12, 13, 14)
        ],
    }
    ctx.update(extra)
    return ctx


def test_segment_arithmetic_for_gsm7_and_ucs2() -> None:
    assert sms_encoding("Reply ACK 12 [ok] €5") == "GSM-7"
    assert sms_units("[]€") == 6  # extension characters take an escape septet each
    assert [sms_segments("a" * n) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert sms_encoding("don’t") == "UCS-2"  # a typographic apostrophe forces UCS-2
    assert [sms_segments("ü’" + "a" * (n - 2)) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert sms_units("🚨") == 2  # outside the BMP: a surrogate pair


@pytest.mark.parametrize("text", [LONG, "don’t panic: " + LONG, "🚨 " + LONG, "[x]€" * 200])
def test_fit_sms_keeps_the_reserve_and_two_segments(text: str) -> None:
    reserve = "Reply ACK 12 to take command"
    fitted = fit_sms(text, reserve)
    whole = f"{fitted}\n{reserve}"
    assert sms_segments(whole) <= 2
    assert fitted.endswith("...")
    assert len(fitted) > (100 if sms_encoding(whole) == "GSM-7" else 60)  # cut, not gutted
    assert fit_sms("short", reserve) == "short"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("summary", ["CredLink API is down", LONG, "Ausfall – " + LONG])
def test_every_sms_form_fits_two_segments_as_the_sms_channel_sends_it(
    kind: str, summary: str
) -> None:
    hint = "Reply ACK 12 to take command"
    text = Templates().render(kind, "sms", context(summary), reserve=hint)
    assert text and "\n\n" not in text
    delivery = Delivery(
        id=1,
        alert_id=12,
        recipient_kind="person",
        recipient="alice",
        method="sms",
        address="+15550100001",
        level=None,
        urgency="notify",
        reason=f"incident {kind}",
        attempts=1,
        payload={"text": text, "ack_hint": hint},
    )
    # What Twilio gets: the SMS channel's own composition of the message.
    body = sms_text(prerendered(None, delivery, text))
    assert body.endswith(hint)
    assert sms_segments(body) <= 2, (kind, sms_encoding(body), sms_units(body))


def test_the_seed_templates_are_the_defaults() -> None:
    templates = Templates()
    initial = templates.render("initial", "chat", context())
    for line in (
        "🚨 INCIDENT DECLARED 🚨",
        "Service: CredLink API",
        "Severity: CRITICAL",
        "Start Time: 2026-03-02 19:00 UTC",
        "Incident Commander: alice",
        "Slack Channel: #incident-20260302-1900-12",
        "Initial Assessment:",
        "- Issue: CredlinkServiceDown: CredLink API is down",
        "- Impact: CredLink API is completely unavailable; All user requests are failing",
        "- Current Status: acknowledged by alice, investigating",
        "Next Steps:",
        "- Updates every 15m",
        "- Target resolution: 20:15 UTC",
        "Stakeholder Actions:",
        "- Monitor #incident-20260302-1900-12 for updates",
        "- Prepare customer communications if needed",
    ):
        assert line in initial.splitlines(), line
    update = templates.render("status_update", "email", context("Rolled back"))
    for line in (
        "📊 INCIDENT UPDATE 📊",
        "Incident: #incident-20260302-1900-12",
        "Status: IN PROGRESS",
        "Progress:",
        "- Rolled back (alice)",
        "Impact:",
        "ETA:",
        "Next Update: 2026-03-02 19:45 UTC",
    ):
        assert line in update.splitlines(), line
    resolved = templates.render("resolution", "chat", context())
    for line in (
        "✅ INCIDENT RESOLVED ✅",
        "Resolution Time: 2026-03-02 19:42 UTC",
        "Duration: 42m",
        "Root Cause:",
        "- bad deploy",
        "Resolution:",
        "- rolled back",
        "Prevention:",
        "Post-Mortem:",
        "- All stakeholders invited",
        "Thank you for your patience and support.",
    ):
        assert line in resolved.splitlines(), line
    assert "\n\n\n" not in initial + update + resolved


def test_without_a_commander_the_initial_notice_says_how_to_take_command() -> None:
    ctx = context()
    ctx["incident"] = {**ctx["incident"], "commander": None}
    text = Templates().render("initial", "chat", ctx)
    assert "Incident Commander: unassigned (take command: escalator ack 12)" in text


def test_overrides_apply_per_method_only(tmp_path: Path) -> None:
    file = tmp_path / "resolution.j2"
    file.write_text("{{ incident.channel }} resolved after {{ resolution.duration }}")
    templates = Templates(
        {
            "chat": {"initial": TemplateSource(text="NEW {{ incident.channel }}")},
            "email": {"resolution": TemplateSource(file=file)},
        }
    )
    assert templates.render("initial", "chat", context()) == "NEW #incident-20260302-1900-12"
    assert templates.render("initial", "email", context()).startswith("🚨 INCIDENT DECLARED")
    assert (
        templates.render("resolution", "email", context())
        == "#incident-20260302-1900-12 resolved after 42m"
    )


def test_a_broken_override_falls_back_to_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="escalator.templates"):
        templates = Templates(
            {
                "chat": {"initial": TemplateSource(text="{{ incident.chanel.x }}")},
                "email": {"initial": TemplateSource(file=tmp_path / "missing.j2")},
                "console": {"initial": TemplateSource(text="{% if %}")},
            }
        )
        for method in ("chat", "email", "console"):
            assert templates.render("initial", method, context()).startswith("🚨 INCIDENT")
    assert "incidents.templates.chat.initial failed" in caplog.text
    assert "incidents.templates.email.initial unusable" in caplog.text


def test_a_shipped_template_with_a_missing_value_fails_loudly() -> None:
    ctx = context()
    del ctx["impact"]
    with pytest.raises(UndefinedError):
        Templates().render("initial", "chat", ctx)
