"""What `serve` refuses and what would silently not work, decided in one place.

A configuration can be valid YAML with every id resolving (config/loader.py, config/refs.py) and
still fail at 3 a.m.: a Twilio auth token whose variable is unset, a voice channel without
the public URL its TwiML lives at, SMS replies that Twilio signs for a URL escalator does
not know. `escalator serve` runs these checks at start-up and refuses on any error;
`escalator check-config` runs the same function (both through cli/main.py's `_findings`)
and exits 1 on the same errors, so the two cannot drift apart. Warnings name things that
run but do not do what the file seems to say.

Every finding names the path inside the file and the reason; the caller adds the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from escalator.config import Config, Secret, Target

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    path: str  # dotted path inside the file; "" for findings about the whole roster
    message: str

    def render(self, source: str) -> str:
        where = f"{self.path}: " if self.path else ""
        prefix = "warning: " if self.level == "warning" else ""
        return f"{source}: {prefix}{where}{self.message}"


def _unset(secret: Secret | None) -> bool:
    return secret is None or secret.resolve() is None


def _no_value(secret: Secret) -> str:
    return secret.problem()


def check(
    config: Config, loopback: bool | None = None, extra_warnings: list[str] | None = None
) -> list[Finding]:
    """Every problem `serve` would refuse (errors) or run with silently (warnings).

    `loopback` is whether serve binds a loopback address: then missing tokens are warnings
    (loopback clients only), otherwise errors; None (check-config) does not know the host
    and warns. `extra_warnings` come from layers above the config (the roster's coverage
    gaps, computed by the caller: config does not import the roster).
    """
    findings = _server(config, loopback)
    findings += _channels(config)
    findings += _incidents(config)
    findings += _routing(config)
    findings += _sources(config)
    findings += [Finding("warning", "", text) for text in extra_warnings or []]
    return findings


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def warnings(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "warning"]


def _server(config: Config, loopback: bool | None) -> list[Finding]:
    out = []
    for name in ("webhook_token", "api_token"):
        secret: Secret | None = getattr(config.server, name)
        if not _unset(secret):
            continue
        why = "is not set" if secret is None else _no_value(secret)
        path = f"server.{name}"
        if loopback is False:
            out.append(
                Finding(
                    "error",
                    path,
                    f"{why}: refusing to serve unauthenticated on a non-loopback address; "
                    "set the token or bind to 127.0.0.1",
                )
            )
        elif loopback is True:
            out.append(
                Finding(
                    "warning",
                    path,
                    f"{why}: accepting unauthenticated requests from loopback clients only",
                )
            )
        else:
            out.append(
                Finding(
                    "warning",
                    path,
                    f"{why}: only loopback clients will be accepted, and `serve` refuses to "
                    "listen on another address",
                )
            )
    return out


def _channels(config: Config) -> list[Finding]:
    out = []
    channels, public_url = config.channels, config.server.public_url
    twilio = channels.twilio
    if twilio is not None:
        if _unset(twilio.auth_token):
            out.append(
                Finding(
                    "error",
                    "channels.twilio.auth_token",
                    f"{_no_value(twilio.auth_token)}: SMS and voice cannot authenticate",
                )
            )
        if twilio.voice and public_url is None:
            out.append(
                Finding(
                    "error",
                    "channels.twilio.voice",
                    "needs server.public_url: Twilio fetches each call's TwiML from it "
                    "(set server.public_url, or voice: false)",
                )
            )
        if twilio.sms and public_url is None:
            out.append(
                Finding(
                    "warning",
                    "server.public_url",
                    "is not set: SMS pages go out, but every reply (ACK 42) and delivery "
                    "callback is refused with 403, since Twilio signs the URL it posts to",
                )
            )
    email = channels.email
    if email is not None and email.username and _unset(email.password):
        why = _no_value(email.password) if email.password else "is not set"
        out.append(
            Finding("error", "channels.email.password", f"{why} (channels.email.username is)")
        )
    slack = channels.slack
    if slack is not None:
        for key in ("bot_token", "signing_secret"):
            secret = getattr(slack, key)
            if _unset(secret):
                out.append(Finding("error", f"channels.slack.{key}", _no_value(secret)))
        unreachable = [p.id for p in config.people if not p.slack_user and not p.email]
        if unreachable:
            out.append(
                Finding(
                    "warning",
                    "people",
                    "without `email` or `slack_user`, Slack cannot tell who they are (buttons, "
                    f"/escalator) nor invite them to incident channels: {', '.join(unreachable)}",
                )
            )
    for name, section in (("chat", channels.chat), ("webhook", channels.webhook)):
        if section is None:
            continue
        key = "webhooks" if name == "chat" else "endpoints"
        urls: dict[str, Secret] = getattr(section, key)
        for channel, secret in urls.items():
            if _unset(secret):
                out.append(Finding("error", f"channels.{name}.{key}.{channel}", _no_value(secret)))
    return out


def _configured_channels(config: Config) -> set[str] | None:
    """Channel names a chat or generic webhook delivers to; None when neither is configured
    (then every channel target prints on the console, as the quick start intends)."""
    channels = config.channels
    if channels.chat is None and channels.webhook is None and channels.slack is None:
        return None
    names = set(channels.chat.webhooks) if channels.chat else set()
    names |= set(channels.slack.channels) if channels.slack else set()
    return names | (set(channels.webhook.endpoints) if channels.webhook else set())


def _channel_targets(config: Config) -> list[tuple[str, str]]:
    """(path, channel name) of every channel target the configuration pages."""
    found: list[tuple[str, str]] = []

    def collect(targets: list[Target], path: str) -> None:
        found.extend(
            (f"{path}[{j}].channel", t.ref) for j, t in enumerate(targets) if t.kind == "channel"
        )

    for name, policy in config.policies.items():
        for i, step in enumerate(policy.steps):
            collect(step.targets, f"policies.{name}.steps[{i}].targets")
    for role, targets in config.roles.items():
        collect(targets, f"roles.{role}")
    incidents = config.incidents
    if incidents.enabled:
        found.append(("incidents.channel", incidents.channel))
        collect(incidents.stakeholders, "incidents.stakeholders")
    if incidents.multiple_critical.enabled:
        collect(incidents.multiple_critical.targets, "incidents.multiple_critical.targets")
    return found


def _routing(config: Config) -> list[Finding]:
    out = []
    catch_all = any(not r.match and not r.match_re for r in config.routes)
    if not catch_all and not config.default_policy:
        out.append(
            Finding(
                "warning",
                "routes",
                "no catch-all route and no default_policy: alerts matching no route and "
                "with a severity that names no policy are not tracked",
            )
        )
    names = _configured_channels(config)
    if names is not None:
        for path, channel in _channel_targets(config):
            if channel not in names:
                out.append(
                    Finding(
                        "warning",
                        path,
                        f"no Slack channel, chat webhook or generic webhook is named {channel!r}: "
                        "these messages only reach the console",
                    )
                )
    return out


def _incidents(config: Config) -> list[Finding]:
    """The multiple-critical trigger's *default* target is role engineering_lead; an
    explicitly named unknown role is a reference error (refs.py), a default one that
    this file does not define is a page to nobody: warn."""
    multiple = config.incidents.multiple_critical
    if not multiple.enabled or "targets" in multiple.model_fields_set:
        return []
    return [
        Finding(
            "warning",
            "incidents.multiple_critical.targets",
            f"defaults to role {t.ref!r}, which is not defined under roles: the "
            f'"{multiple.threshold} critical alerts" page reaches nobody (define the role, '
            "set targets, or multiple_critical.enabled: false)",
        )
        for t in multiple.targets
        if t.kind == "role" and t.ref not in config.roles
    ]


def _sources(config: Config) -> list[Finding]:
    """Heartbeat tokens and Events v2 routing keys that are configured but have no value:
    a heartbeat nobody can beat pages as missed; an integration nobody can authenticate
    as turns every sender away, so `serve` refuses it."""
    out = []
    for heartbeat in config.heartbeats:
        if heartbeat.token is not None and _unset(heartbeat.token):
            out.append(
                Finding(
                    "warning",
                    f"heartbeats.{heartbeat.name}.token",
                    f"{_no_value(heartbeat.token)}: POST /heartbeats/{heartbeat.name} will "
                    "refuse every beat",
                )
            )
    for integration in config.integrations:
        if _unset(integration.key):
            out.append(
                Finding(
                    "error",
                    f"integrations.{integration.name}.key",
                    f"{_no_value(integration.key)}: no sender could authenticate",
                )
            )
    return out
