"""The configuration file: one module per concept (`people`, `roster`, `policies`,
`channels`, `server`, `incidents`, `sources`, shared value types in `base`), the root
`model`, its loader (`loader`), durations and the checks `serve` and `check-config` share.

Everything is re-exported here so callers import from `escalator.config`.
"""

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
