"""The pure parts of heartbeats, maintenance windows and PagerDuty Events v2: plain values
in, plain values out, explicit times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from escalator.config import ConfigError, Heartbeat, RecurringMaintenance, parse_config
from escalator.ingest import events_v2, heartbeats
from escalator.ingest.events_v2 import InvalidEvent
from escalator.maintenance import windows as maintenance
from tests.support.helpers import SHIPPED_CONFIG

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def hb(**extra: Any) -> Heartbeat:
    fields: dict[str, Any] = {
        "name": "watchdog",
        "interval": "1m",
        "grace": "4m",
        "alertmanager": {"match": {"alertname": "Watchdog"}},
        **extra,
    }
    return Heartbeat.model_validate(fields)


# Heartbeats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_beat", "first_seen", "started", "due"),
    [
        # Beating: due interval + grace after the last beat.
        (T, T - timedelta(days=1), T - timedelta(days=1), T + timedelta(minutes=5)),
        # Never beat: the clock runs from when the heartbeat was first configured.
        (None, T, T - timedelta(days=1), T + timedelta(minutes=5)),
        # The daemon was down for an hour: not due until startup grace after its start.
        (T - timedelta(hours=1), T - timedelta(days=1), T, T + timedelta(minutes=5)),
        # ... and a beat after the start moves it on as usual.
        (T + timedelta(minutes=2), T - timedelta(days=1), T, T + timedelta(minutes=7)),
    ],
)
def test_heartbeat_deadline(
    last_beat: datetime | None, first_seen: datetime, started: datetime, due: datetime
) -> None:
    beat = hb()
    assert heartbeats.deadline(beat, last_beat, first_seen, started) == due
    assert not heartbeats.is_overdue(
        beat, last_beat, first_seen, started, due - timedelta(milliseconds=1)
    )
    assert heartbeats.is_overdue(beat, last_beat, first_seen, started, due)


def test_startup_grace_can_be_set_shorter() -> None:
    beat = hb(startup_grace="30s")
    started = T
    assert heartbeats.deadline(beat, T - timedelta(hours=1), T, started) == T + timedelta(
        seconds=30
    )


def test_watchdog_alerts_are_beats_and_others_are_not() -> None:
    beats = [hb(), hb(name="cron", token={"env": "X"}, alertmanager=None)]
    assert heartbeats.beats_in({"alertname": "Watchdog", "severity": "none"}, beats) == ["watchdog"]
    assert heartbeats.beats_in({"alertname": "WatchdogX"}, beats) == []
    assert heartbeats.beats_in({"alertname": "CredlinkServiceDown"}, beats) == []


def test_missed_alert_labels_cannot_be_overridden_by_config() -> None:
    beat = hb(labels={"alertname": "Other", "service": "monitoring"}, severity="warning")
    assert heartbeats.alert_labels(beat) == {
        "alertname": "HeartbeatMissed",
        "heartbeat": "watchdog",
        "severity": "warning",
        "service": "monitoring",
    }
    fp = heartbeats.fingerprint("watchdog")
    assert fp == heartbeats.fingerprint("watchdog") != heartbeats.fingerprint("backup")
    assert len(fp) <= 64


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"interval": "1m", "alertmanager": {"match": {"alertname": "W"}}}, "name"),
        ({"name": "w", "interval": "1m"}, "needs `alertmanager`"),
        ({"name": "w", "interval": "0s", "token": {"env": "T"}}, "longer than zero"),
        ({"name": "w", "interval": "1m", "alertmanager": {}}, "at least one"),
        ({"name": "w", "interval": "1m", "token": {"env": "T"}, "policy": "nope"}, "nope"),
    ],
)
def test_heartbeat_config_errors_name_the_path(body: dict[str, Any], reason: str) -> None:
    import yaml

    text = yaml.safe_dump(
        {"policies": {"p": {"steps": [{"targets": [{"channel": "x"}]}]}}, "heartbeats": [body]}
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, "escalator.yaml")
    assert "escalator.yaml: heartbeats[0]" in str(err.value)
    assert reason in str(err.value)


def test_shipped_config_watches_the_watchdog() -> None:
    config = parse_config(SHIPPED_CONFIG.read_text())
    (watchdog,) = config.heartbeats
    assert watchdog.alertmanager is not None
    assert watchdog.alertmanager.match == {"alertname": "Watchdog"}


# Maintenance windows ------------------------------------------------------------------------


def weekly(**extra: Any) -> RecurringMaintenance:
    fields: dict[str, Any] = {
        "name": "patching",
        "match": {"service": "db"},
        "days": ["sunday"],
        "from": "02:30",
        "duration": "2h",
        "timezone": "America/New_York",
        **extra,
    }
    return RecurringMaintenance.model_validate(fields)


def test_weekly_window_keeps_its_wall_clock_time_across_dst() -> None:
    window = weekly(**{"from": "01:00"})
    found = maintenance.occurrences(
        window, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)
    )
    # 01:00 New York: EST (-5) before 2026-03-08, EDT (-4) from that Sunday's 02:00 on.
    assert [w.starts_at for w in found] == [
        datetime(2026, 3, 1, 6, tzinfo=UTC),
        datetime(2026, 3, 8, 6, tzinfo=UTC),
        datetime(2026, 3, 15, 5, tzinfo=UTC),
    ]
    assert all(w.ends_at - w.starts_at == timedelta(hours=2) for w in found)
    assert {w.key for w in found} == {"config:patching"}


def test_weekly_window_starting_in_the_spring_forward_gap_starts_after_it() -> None:
    # 02:30 does not exist in New York on 2026-03-08; fold=0 maps it to 03:30 EDT = 07:30Z.
    (found,) = maintenance.occurrences(
        weekly(), datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)
    )
    assert found.starts_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_active_recurring_and_covering() -> None:
    window = weekly()
    sunday = datetime(2026, 3, 1, 8, tzinfo=UTC)  # 03:00 EST, inside 02:30-04:30
    (active,) = maintenance.active_recurring([window], sunday)
    assert active.active(sunday)
    assert maintenance.active_recurring([window], sunday + timedelta(hours=2)) == []
    assert maintenance.active_recurring([window], sunday + timedelta(days=1)) == []
    assert maintenance.covering([active], {"service": "db", "x": "1"}, sunday) == active
    assert maintenance.covering([active], {"service": "web"}, sunday) is None


def test_overlapping_windows_hold_until_the_last_ends() -> None:
    short = maintenance.Window("#1", T, T + timedelta(hours=1), "a", match={"service": "db"})
    long = maintenance.Window("#2", T, T + timedelta(hours=3), "b", match_re={"service": "d.*"})
    other = maintenance.Window("#3", T, T + timedelta(hours=9), "c", match={"service": "web"})
    now = T + timedelta(minutes=5)
    assert maintenance.covering([short, long, other], {"service": "db"}, now) == long
    # Regular expressions are anchored, like Alertmanager's and the routes'.
    assert not long.matches({"service": "xdb"})
    assert maintenance.covering([short], {"service": "db"}, T + timedelta(hours=1)) is None


def test_window_spanning_midnight_found_from_the_next_day() -> None:
    window = weekly(days=["saturday"], **{"from": "23:00"}, duration="4h", timezone="UTC")
    monday = datetime(2026, 3, 1, 1, tzinfo=UTC)  # Sunday 01:00 UTC
    (found,) = maintenance.active_recurring([window], monday)
    assert found.starts_at == datetime(2026, 2, 28, 23, tzinfo=UTC)


def test_recurring_window_config_errors() -> None:
    with pytest.raises(ValueError, match="match"):
        weekly(match={})
    with pytest.raises(ValueError, match="duration"):
        weekly(duration="8d")


# PagerDuty Events API v2 ------------------------------------------------------------------

KEY = "a" * 32


def trigger(**payload: Any) -> dict[str, Any]:
    return {
        "routing_key": KEY,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "error", **payload},
    }


def test_trigger_maps_to_labels_and_annotations() -> None:
    body = trigger(component="postgres", group="prod", **{"class": "disk"})
    body["links"] = [{"href": "https://grafana.example/d/1", "text": "dashboard"}]
    body["images"] = [{"src": "https://grafana.example/r.png"}]
    event = events_v2.parse_event(body)
    assert event.dedup_key is None
    labels = events_v2.alert_labels(event, "grafana", {"service": "db", "severity": "info"})
    assert labels == {
        "alertname": "disk",
        "severity": "critical",  # error pages like critical; the integration cannot lower it
        "pd_severity": "error",
        "integration": "grafana",
        "source": "db-1",
        "component": "postgres",
        "group": "prod",
        "service": "db",
    }
    notes = events_v2.alert_annotations(event, "k1")
    assert notes["summary"] == "disk full" and notes["dedup_key"] == "k1"
    assert notes["links"] == "dashboard: https://grafana.example/d/1"
    assert notes["images"] == "https://grafana.example/r.png"


def test_fingerprint_is_per_integration_and_fits() -> None:
    a = events_v2.fingerprint("grafana", "x" * 255)
    assert len(a) <= 64
    assert a != events_v2.fingerprint("sentry", "x" * 255)
    assert a == events_v2.fingerprint("grafana", "x" * 255)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "must be a JSON object"),
        ({**trigger(), "routing_key": ""}, "'routing_key' is missing or blank"),
        ({**trigger(), "event_action": "page"}, "'event_action' must be one of"),
        ({k: v for k, v in trigger().items() if k != "payload"}, "'payload' is missing"),
        (trigger(summary=""), "'payload.summary' is missing or blank"),
        (trigger(summary="x" * 1025), "'payload.summary' is too long"),
        (trigger(source=None), "'payload.source' is missing or blank"),
        (trigger(severity="high"), "'payload.severity' must be one of"),
        (trigger(timestamp="yesterday"), "'payload.timestamp' must be an ISO 8601"),
        ({**trigger(), "dedup_key": "k" * 256}, "'dedup_key' is too long"),
        ({**trigger(), "links": [{"text": "no href"}]}, "'links[0].href' is missing"),
        ({**trigger(), "images": "x"}, "'images' must be an array"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is required"),
        ({"routing_key": KEY, "event_action": "acknowledge"}, "'dedup_key' is required"),
    ],
)
def test_invalid_events_are_refused_with_pagerdutys_wording(body: Any, error: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        events_v2.parse_event(body)
    answer = err.value.answer()
    assert answer["status"] == "invalid event"
    assert answer["message"] == "Event object is invalid"
    assert any(error in e for e in answer["errors"]), answer["errors"]


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(InvalidEvent) as err:
        events_v2.parse_event({"routing_key": KEY, "event_action": "trigger", "payload": {}})
    assert len(err.value.errors) == 3  # summary, source, severity


def test_text_from_outside_loses_control_characters() -> None:
    event = events_v2.parse_event(
        trigger(summary="disk\x00 full\x1b[31m", custom_details={"k\x07": ["v\x00"]})
    )
    assert event.summary == "disk full[31m"
    assert event.custom_details == {"k": ["v"]}


def test_resolve_needs_no_payload_and_keeps_the_key() -> None:
    event = events_v2.parse_event({"routing_key": KEY, "event_action": "resolve", "dedup_key": "a"})
    assert (event.action, event.dedup_key, event.summary) == ("resolve", "a", None)


def test_change_events() -> None:
    change = events_v2.parse_change(
        {
            "routing_key": KEY,
            "payload": {
                "summary": "deploy api v42",
                "source": "ci",
                "timestamp": "2026-03-02T12:00:00Z",
            },
            "links": [{"href": "https://ci.example/42"}],
        }
    )
    assert events_v2.change_detail(change, "github") == (
        "change from github (ci): deploy api v42 at 2026-03-02T12:00:00+00:00 https://ci.example/42"
    )
    with pytest.raises(InvalidEvent, match=r"payload\.summary"):
        events_v2.parse_change({"routing_key": KEY, "payload": {}})
