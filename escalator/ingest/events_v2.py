"""PagerDuty Events API v2, the pure part: the request bodies, PagerDuty's validation
rules and answers, and how an event maps onto a tracked alert.

Grafana, Sentry, Datadog, CloudWatch (through SNS), Uptime Kuma and most monitoring tools
can send PagerDuty events; taking the same body at the same path makes escalator usable
behind all of them. The mapping:

- `routing_key` names an integration of the config (its key is a secret).
- `dedup_key` is the alert's identity within the integration: a trigger while an alert with
  that key is open updates it, acknowledge and resolve act on it. When a trigger has none,
  one is generated and returned, as PagerDuty does.
- `payload.severity` becomes the `severity` label the routes know (`error` pages like
  `critical`, as PagerDuty's default urgency rule does); the original stays in
  `pd_severity`. `source`, `component`, `group` and `class` become labels; the summary,
  custom details, links and images become annotations.

Nothing here reads a clock, a database or the network.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Action = Literal["trigger", "acknowledge", "resolve"]
ACTIONS: tuple[Action, ...] = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
SEVERITY_LABEL = {"critical": "critical", "error": "critical", "warning": "warning", "info": "info"}

MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_FIELD = 1024  # source, component, group, class, client: PagerDuty documents no limit
MAX_LINKS = 50

# Answers, exactly as PagerDuty words them.
ACCEPTED = {"status": "success", "message": "Event processed"}
CHANGE_ACCEPTED = {"status": "success", "message": "Change event processed"}
INVALID = {"status": "invalid event", "message": "Event object is invalid"}
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}

# C0 controls but tab and newline, DEL, and lone surrogates: text from outside never
# carries them into a label, a terminal line, an SMS or (NUL) a PostgreSQL JSON value.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class InvalidEvent(ValueError):
    """A body PagerDuty would refuse with 400; `errors` are its reasons, PagerDuty-style."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))

    def answer(self) -> dict[str, Any]:
        return {**INVALID, "errors": self.errors}


@dataclass(frozen=True)
class Link:
    href: str
    text: str | None = None


@dataclass(frozen=True)
class Image:
    src: str
    href: str | None = None
    alt: str | None = None


@dataclass(frozen=True)
class Event:
    routing_key: str
    action: Action
    dedup_key: str | None
    summary: str | None = None
    source: str | None = None
    severity: str | None = None
    timestamp: datetime | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    custom_details: Any = None
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()
    client: str | None = None
    client_url: str | None = None


@dataclass(frozen=True)
class ChangeEvent:
    routing_key: str
    summary: str
    source: str | None = None
    timestamp: datetime | None = None
    custom_details: Any = None
    links: tuple[Link, ...] = field(default_factory=tuple)


def clean(text: str) -> str:
    return _UNSAFE.sub("", text)


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean(str(k)): _clean_json(v) for k, v in value.items()}
    return value


class _Reader:
    """Collects every problem of one body, so the 400 lists them all at once."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def text(
        self,
        obj: dict[str, Any],
        key: str,
        where: str,
        required: bool = False,
        limit: int = MAX_FIELD,
    ) -> str | None:
        value = obj.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.errors.append(f"'{where}' is missing or blank")
            return None
        if not isinstance(value, str):
            self.errors.append(f"'{where}' must be a string")
            return None
        value = clean(value)
        if len(value) > limit:
            self.errors.append(f"Length of '{where}' is too long (maximum is {limit} characters)")
            return None
        return value

    def timestamp(self, obj: dict[str, Any], where: str) -> datetime | None:
        value = obj.get("timestamp")
        if value is None:
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
        self.errors.append(f"'{where}' must be an ISO 8601 timestamp with an offset")
        return None

    def links(self, body: dict[str, Any]) -> tuple[Link, ...]:
        return tuple(
            Link(href, self.text(item, "text", f"links[{i}].text"))
            for i, item in self._items(body, "links")
            if (href := self.text(item, "href", f"links[{i}].href", required=True)) is not None
        )

    def images(self, body: dict[str, Any]) -> tuple[Image, ...]:
        return tuple(
            Image(
                src,
                self.text(item, "href", f"images[{i}].href"),
                self.text(item, "alt", f"images[{i}].alt"),
            )
            for i, item in self._items(body, "images")
            if (src := self.text(item, "src", f"images[{i}].src", required=True)) is not None
        )

    def _items(self, body: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > MAX_LINKS:
            self.errors.append(f"'{key}' must be an array of at most {MAX_LINKS} objects")
            return []
        items = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                items.append((i, item))
            else:
                self.errors.append(f"'{key}[{i}]' must be an object")
        return items

    def details(self, payload: dict[str, Any]) -> Any:
        return _clean_json(payload.get("custom_details"))


def _routing_key(body: dict[str, Any], reader: _Reader) -> str:
    key = body.get("routing_key")
    if not isinstance(key, str) or not key.strip():
        reader.errors.append("'routing_key' is missing or blank")
        return ""
    return key


def parse_event(body: Any) -> Event:
    """Validate an alert event (`POST /v2/enqueue`) as PagerDuty does; raise InvalidEvent."""
    if not isinstance(body, dict):
        raise InvalidEvent(["Event object must be a JSON object"])
    reader = _Reader()
    routing_key = _routing_key(body, reader)
    action = body.get("event_action")
    if action not in ACTIONS:
        reader.errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    dedup_key = reader.text(body, "dedup_key", "dedup_key", limit=MAX_DEDUP_KEY)
    if action in ("acknowledge", "resolve") and dedup_key is None:
        reader.errors.append(f"'dedup_key' is required for an event_action of {action}")
    payload = body.get("payload")
    fields: dict[str, Any] = {}
    if action == "trigger" or payload is not None:
        if not isinstance(payload, dict):
            reader.errors.append("'payload' is missing or not an object")
        else:
            trigger = action == "trigger"
            fields["summary"] = reader.text(
                payload, "summary", "payload.summary", required=trigger, limit=MAX_SUMMARY
            )
            fields["source"] = reader.text(payload, "source", "payload.source", required=trigger)
            severity = payload.get("severity")
            if severity is None and not trigger:
                pass  # acknowledge and resolve may carry a payload without one
            elif severity not in SEVERITIES:
                reader.errors.append(
                    "'payload.severity' must be one of critical, error, warning, info"
                )
            else:
                fields["severity"] = severity
            fields["timestamp"] = reader.timestamp(payload, "payload.timestamp")
            fields["component"] = reader.text(payload, "component", "payload.component")
            fields["group"] = reader.text(payload, "group", "payload.group")
            fields["class_"] = reader.text(payload, "class", "payload.class")
            fields["custom_details"] = reader.details(payload)
    links = reader.links(body)
    images = reader.images(body)
    client = reader.text(body, "client", "client")
    client_url = reader.text(body, "client_url", "client_url")
    if reader.errors:
        raise InvalidEvent(reader.errors)
    return Event(
        routing_key=routing_key,
        action=action,  # type: ignore[arg-type]
        dedup_key=dedup_key,
        links=links,
        images=images,
        client=client,
        client_url=client_url,
        **fields,
    )


def parse_change(body: Any) -> ChangeEvent:
    """Validate a change event (`POST /v2/change/enqueue`); raise InvalidEvent."""
    if not isinstance(body, dict):
        raise InvalidEvent(["Event object must be a JSON object"])
    reader = _Reader()
    routing_key = _routing_key(body, reader)
    payload = body.get("payload")
    summary = source = timestamp = details = None
    if not isinstance(payload, dict):
        reader.errors.append("'payload' is missing or not an object")
    else:
        summary = reader.text(
            payload, "summary", "payload.summary", required=True, limit=MAX_SUMMARY
        )
        source = reader.text(payload, "source", "payload.source")
        timestamp = reader.timestamp(payload, "payload.timestamp")
        details = reader.details(payload)
    links = reader.links(body)
    if reader.errors:
        raise InvalidEvent(reader.errors)
    assert summary is not None
    return ChangeEvent(routing_key, summary, source, timestamp, details, links)


def new_dedup_key() -> str:
    """A dedup key for a trigger that came without one (PagerDuty returns 32 hex digits)."""
    return uuid.uuid4().hex


def fingerprint(integration: str, dedup_key: str) -> str:
    """The alert's identity: per integration (two tools may both send `dedup_key: cpu`),
    fixed length for the 64-character column, never equal to an Alertmanager fingerprint."""
    digest = hashlib.sha256(f"{integration}\0{dedup_key}".encode()).hexdigest()
    return f"events-v2:{digest[:40]}"


def alert_labels(event: Event, integration: str, extra: dict[str, str]) -> dict[str, str]:
    """Labels of the alert a trigger opens or updates (routes match on them)."""
    assert event.severity is not None and event.summary is not None
    labels = {
        "alertname": event.class_ or event.summary[:200],
        "severity": SEVERITY_LABEL[event.severity],
        "pd_severity": event.severity,
        "integration": integration,
        "source": event.source or "",
    }
    for key, value in (("component", event.component), ("group", event.group)):
        if value:
            labels[key] = value
    # The integration's labels (service, team) route the alert; the event's own identity
    # (alertname, severity) stays the event's.
    return {**extra, **labels}


def alert_annotations(event: Event, dedup_key: str) -> dict[str, str]:
    notes = {"summary": event.summary or "", "dedup_key": dedup_key}
    if event.class_:
        notes["class"] = event.class_
    if event.timestamp is not None:
        notes["timestamp"] = event.timestamp.isoformat()
    if event.custom_details is not None:
        notes["custom_details"] = json.dumps(event.custom_details, sort_keys=True)[:8000]
    if event.links:
        notes["links"] = "\n".join(
            f"{link.text}: {link.href}" if link.text else link.href for link in event.links
        )
    if event.images:
        notes["images"] = "\n".join(image.src for image in event.images)
    if event.client:
        notes["client"] = event.client
    if event.client_url:
        notes["client_url"] = event.client_url
    return notes


def change_detail(change: ChangeEvent, integration: str) -> str:
    """The timeline line a change event leaves on every alert open when it arrives."""
    parts = [f"change from {integration}"]
    if change.source:
        parts.append(f"({change.source})")
    text = " ".join(parts) + f": {change.summary}"
    if change.timestamp is not None:
        text += f" at {change.timestamp.isoformat()}"
    if change.links:
        text += " " + " ".join(link.href for link in change.links)
    return text
