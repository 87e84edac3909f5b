"""Chat through Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat).

A policy targets a channel by name (`{channel: incidents}`); the config maps each name to
the webhook URL that posts there, so #incidents, #alerts and #info follow the policies
for critical, warning and info. URLs hold a token, so they are secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx

from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.text import slack


def quiet_http_loggers() -> None:
    """httpx logs every request's URL at INFO, and chat and webhook URLs carry their token:
    its loggers (and httpcore's) are kept at WARNING so `serve --log-level info` does not
    write secrets to the log on every delivery."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET (0) included: root may say INFO
            logger.setLevel(logging.WARNING)


_ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def http_result(response: httpx.Response, what: str) -> SendResult:
    """2xx sent; 429 and 5xx retry; any other answer will not change on retry."""
    code = response.status_code
    if 200 <= code < 300:
        return SendResult("sent", f"{what} answered {code}")
    detail = f"{what} answered {code}: {response.text[:200]}"
    if code == 429 or code >= 500 or code == 408:
        return SendResult("retry", detail)
    return SendResult("failed", detail)


class ChatChannel:
    method = "chat"

    def __init__(self, webhooks: Mapping[str, str], timeout: float = 10.0, connect: float = 5.0):
        self._webhooks = dict(webhooks)
        quiet_http_loggers()
        # Pooled connections: the chat lane sends several at once (escalator.notify.lanes).
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(connect, timeout)),
            limits=httpx.Limits(max_connections=32),
        )

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._webhooks)

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        name = (delivery.address or delivery.recipient).lstrip("#")
        url = self._webhooks.get(name)
        if url is None:
            return SendResult("failed", f"no chat webhook for #{name}")
        icon = _ICONS.get(message.severity or "", ":bell:")
        # Slack-compatible markup: `<!channel>` or `<url|text>` in an alert's text shows as
        # typed, pinging nobody and hiding no link.
        text = (
            f"{icon} *{slack(message.title)}*\n{slack(message.body)}\n_{slack(message.ack_hint)}_"
        )
        try:
            response = self._client.post(url, json={"text": text})
        except httpx.HTTPError as exc:
            return SendResult("retry", f"chat #{name}: {type(exc).__name__}: {exc}")
        return http_result(response, f"chat #{name}")
