"""Twilio SMS through the real `twilio` SDK, and what Twilio's answers mean for a page.

The SDK does the HTTP; this module only decides: retry later (429 / code 20429, 5xx,
network errors and timeouts) or give up on this method (a permanent error such as
21211 invalid number, 21610 unsubscribed, 21614 not SMS-capable, or any other 4xx, which
no retry will fix) so the sender moves to the person's next contact method at once.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from escalator.config import TwilioChannel as TwilioSettings
from escalator.notify.channels.base import Delivery, Message, SendResult

# Twilio's message body limit is 1600 characters; stay under it with room for the hint.
_SMS_LIMIT = 1500
# Error codes that say "this number will never take this message": fall back at once.
PERMANENT_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21408, 21610, 21612, 21614})
RATE_LIMITED_CODE = 20429


def make_client(settings: TwilioSettings, connect: float | None = None) -> Client:
    """A Twilio client; `api_base_url` (tests only) points the real SDK at a fake API.

    `connect`: the connect timeout (requests takes a (connect, read) pair); the lane's
    deadline bounds the whole attempt on top of it."""
    token = settings.auth_token.resolve()
    if token is None:
        raise ValueError(f"channels.twilio.auth_token: {settings.auth_token.describe()} is unset")
    total = settings.timeout.total_seconds()
    timeout = (min(connect, total), total) if connect else total
    http = TwilioHttpClient(timeout=total)
    # The SDK's constructor only takes one number; requests itself takes the pair.
    http.timeout = timeout  # type: ignore[assignment]
    if http.session is not None:
        # The SMS and voice lanes send up to 8 requests each at once: keep that many
        # connections instead of requests' 10 per host, discarded beyond.
        for prefix in ("https://", "http://"):
            http.session.mount(prefix, HTTPAdapter(pool_maxsize=32))
    client = Client(settings.account_sid, token, http_client=http)
    if settings.api_base_url:
        client.api.base_url = settings.api_base_url.rstrip("/")
    return client


def classify(exc: Exception) -> SendResult:
    """Turn an SDK or transport error into retry / failed (never raises)."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        # The legacy error body and the RFC 9457 one carry the same status and code.
        status, code = int(exc.status or 0), exc.code
        text = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
        detail = f"twilio {status}" + (f" code {code}" if code else "")
        detail += f": {text}" if text else ""
        if code in PERMANENT_CODES:
            return SendResult("failed", detail)
        if status in (408, 429) or code == RATE_LIMITED_CODE or status >= 500:
            return SendResult("retry", detail)
        return SendResult("failed", detail)
    if isinstance(exc, requests.RequestException | OSError | TimeoutError):
        return SendResult("retry", f"twilio unreachable: {type(exc).__name__}: {exc}")
    return SendResult("retry", f"{type(exc).__name__}: {exc}")


def sms_text(message: Message) -> str:
    """The SMS body: the rendered text (the title holds all of it: escalator.notify.message
    already fitted it to two segments with the hint) and the reply hint."""
    text = "\n".join(part for part in (message.title, message.ack_hint) if part)
    if len(text) > _SMS_LIMIT:
        keep = _SMS_LIMIT - len(message.ack_hint) - 5
        text = f"{text[:keep]} ...\n{message.ack_hint}"
    return text


class TwilioSmsChannel:
    method = "sms"

    def __init__(self, client: Client, from_number: str, public_url: str | None):
        self._client = client
        self._from = from_number
        # The SDK imports its REST resources on first use (~0.1 s): do it now, not on the
        # first page.
        _ = client.messages
        # Without a public URL Twilio cannot report delivery; the send still counts as sent.
        self._status_url = f"{public_url.rstrip('/')}/twilio/sms/status" if public_url else None

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        if not delivery.address:
            return SendResult("failed", "no phone number")
        kwargs: dict[str, str] = {}
        if self._status_url:
            kwargs["status_callback"] = self._status_url
        try:
            sent = self._client.messages.create(
                to=delivery.address, from_=self._from, body=sms_text(message), **kwargs
            )
        except Exception as exc:
            return classify(exc)
        return SendResult("sent", f"twilio message {sent.sid} {sent.status}", sent.sid)
