"""A generic JSON webhook, for targets `{channel: NAME}` whose name is a configured endpoint.

The body is stable and versioned so receivers can rely on it:
{"version": 1, "recipient": ..., "urgency": ..., "level": ..., "title": ..., "body": ...,
 "ack_hint": ..., "severity": ..., "alert_ids": [...]}.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.notify.channels.chat import http_result, quiet_http_loggers


class WebhookChannel:
    method = "webhook"

    def __init__(self, endpoints: Mapping[str, str], timeout: float = 10.0, connect: float = 5.0):
        self._endpoints = dict(endpoints)
        quiet_http_loggers()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(connect, timeout)),
            limits=httpx.Limits(max_connections=32),
        )

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._endpoints)

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        name = delivery.address or delivery.recipient
        url = self._endpoints.get(name)
        if url is None:
            return SendResult("failed", f"no webhook endpoint {name!r}")
        body = {
            "version": 1,
            "recipient": delivery.recipient,
            "urgency": delivery.urgency,
            "level": delivery.level,
            "title": message.title,
            "body": message.body,
            "ack_hint": message.ack_hint,
            "severity": message.severity,
            "alert_ids": list(message.alert_ids),
        }
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            return SendResult("retry", f"webhook {name}: {type(exc).__name__}: {exc}")
        return http_result(response, f"webhook {name}")
