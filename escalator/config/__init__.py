"""The configuration file: one module per concept (`people`, `roster`, `policies`,
`channels`, `server`, `incidents`, `sources`, shared value types in `base`), the root
`model`, its loader (`loader`), durations and the checks `serve` and `check-config` share.

Everything is re-exported here so callers import from `escalator.config`. The names load
on first use (PEP 562): `escalator list` needs the policy models to say what fires next,
not the loader, YAML, channels or the root model, and a CLI verb pays for each import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escalator.config.base import (
        WEEKDAYS,
        Duration,
        Identifier,
        Method,
        RateLimit,
        Secret,
        Strict,
        TemplateSource,
        TimeZoneName,
        Urgency,
        Weekday,
    )
    from escalator.config.channels import (
        Channels,
        ChatChannel,
        ConsoleChannel,
        EmailChannel,
        Lane,
        LaneMethod,
        PageTemplate,
        SlackChannel,
        TwilioChannel,
        WebhookChannel,
    )
    from escalator.config.incidents import IncidentNotice, Incidents, MultipleCritical, Runbook
    from escalator.config.loader import ConfigError, load_config, parse_config
    from escalator.config.model import Config
    from escalator.config.people import ContactRule, Person, Team
    from escalator.config.policies import LabelMatcher, Policy, Repeat, Route, Step, Target
    from escalator.config.roster import Layer, Restriction, Rotation, RotationOverride, ShiftPattern
    from escalator.config.server import ConsoleAuth, Engine, Server
    from escalator.config.sources import Heartbeat, Integration, RecurringMaintenance

_HOMES = {
    "Channels": "escalator.config.channels",
    "ChatChannel": "escalator.config.channels",
    "Config": "escalator.config.model",
    "ConfigError": "escalator.config.loader",
    "ConsoleAuth": "escalator.config.server",
    "ConsoleChannel": "escalator.config.channels",
    "ContactRule": "escalator.config.people",
    "Duration": "escalator.config.base",
    "EmailChannel": "escalator.config.channels",
    "Engine": "escalator.config.server",
    "Heartbeat": "escalator.config.sources",
    "Identifier": "escalator.config.base",
    "IncidentNotice": "escalator.config.incidents",
    "Incidents": "escalator.config.incidents",
    "Integration": "escalator.config.sources",
    "LabelMatcher": "escalator.config.policies",
    "Lane": "escalator.config.channels",
    "LaneMethod": "escalator.config.channels",
    "Layer": "escalator.config.roster",
    "Method": "escalator.config.base",
    "MultipleCritical": "escalator.config.incidents",
    "PageTemplate": "escalator.config.channels",
    "Person": "escalator.config.people",
    "Policy": "escalator.config.policies",
    "RateLimit": "escalator.config.base",
    "RecurringMaintenance": "escalator.config.sources",
    "Repeat": "escalator.config.policies",
    "Restriction": "escalator.config.roster",
    "Rotation": "escalator.config.roster",
    "RotationOverride": "escalator.config.roster",
    "Route": "escalator.config.policies",
    "Runbook": "escalator.config.incidents",
    "Secret": "escalator.config.base",
    "Server": "escalator.config.server",
    "ShiftPattern": "escalator.config.roster",
    "SlackChannel": "escalator.config.channels",
    "Step": "escalator.config.policies",
    "Strict": "escalator.config.base",
    "Target": "escalator.config.policies",
    "Team": "escalator.config.people",
    "TemplateSource": "escalator.config.base",
    "TimeZoneName": "escalator.config.base",
    "TwilioChannel": "escalator.config.channels",
    "Urgency": "escalator.config.base",
    "WEEKDAYS": "escalator.config.base",
    "WebhookChannel": "escalator.config.channels",
    "Weekday": "escalator.config.base",
    "load_config": "escalator.config.loader",
    "parse_config": "escalator.config.loader",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "WEEKDAYS",
    "Channels",
    "ChatChannel",
    "Config",
    "ConfigError",
    "ConsoleAuth",
    "ConsoleChannel",
    "ContactRule",
    "Duration",
    "EmailChannel",
    "Engine",
    "Heartbeat",
    "Identifier",
    "IncidentNotice",
    "Incidents",
    "Integration",
    "LabelMatcher",
    "Lane",
    "LaneMethod",
    "Layer",
    "Method",
    "MultipleCritical",
    "PageTemplate",
    "Person",
    "Policy",
    "RateLimit",
    "RecurringMaintenance",
    "Repeat",
    "Restriction",
    "Rotation",
    "RotationOverride",
    "Route",
    "Runbook",
    "Secret",
    "Server",
    "ShiftPattern",
    "SlackChannel",
    "Step",
    "Strict",
    "Target",
    "Team",
    "TemplateSource",
    "TimeZoneName",
    "TwilioChannel",
    "Urgency",
    "WebhookChannel",
    "Weekday",
    "load_config",
    "parse_config",
]
