"""Delivery channels: one module per way to reach a person (console, email, chat, webhook,
Twilio SMS and voice), all behind `base.Channel`."""

from __future__ import annotations

from escalator.config import Config


def configured_methods(config: Config) -> frozenset[str]:
    """The delivery methods this configuration gives the daemon, without building the
    channels (no secrets needed): what a page queued away from the daemon may use."""
    settings = config.channels
    methods = set()
    if settings.console.enabled:
        methods.add("console")
    if settings.twilio is not None:
        if settings.twilio.sms:
            methods.add("sms")
        if settings.twilio.voice:
            methods.add("voice")
    for name in ("email", "chat", "webhook", "slack"):
        if getattr(settings, name) is not None:
            methods.add(name)
    return frozenset(methods)
