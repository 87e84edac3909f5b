"""Twilio voice calls through the real `twilio` SDK.

The call itself carries no text: Twilio fetches TwiML from escalator's `/twilio/voice`
(see escalator.web.twilio), which speaks the summary and gathers one key: 1 acknowledges,
9 escalates now. The URL names the alerts of the call, so the keypress acts on exactly what
was announced; Twilio signs that URL, so nobody can forge it. Busy, no-answer and failed
calls come back as status callbacks, and the sender then tries the next contact method.
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.notify.channels.twilio_sms import classify

# More alerts than this in one call: the keypress acknowledges all of the person's alerts.
MAX_IDS_IN_URL = 100


def voice_url(public_url: str, alert_ids: tuple[int, ...]) -> str:
    ids = "all" if len(alert_ids) > MAX_IDS_IN_URL else ".".join(str(i) for i in alert_ids)
    return f"{public_url.rstrip('/')}/twilio/voice?{urlencode({'alerts': ids})}"


class TwilioVoiceChannel:
    method = "voice"

    def __init__(self, client: Client, from_number: str, public_url: str, ring_seconds: int = 30):
        self._client = client
        self._from = from_number
        _ = client.calls  # imported on first use otherwise (see twilio_sms)
        self._public = public_url.rstrip("/")
        self._ring = ring_seconds

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        if not delivery.address:
            return SendResult("failed", "no phone number")
        kwargs: dict[str, object] = {}
        if message.alert_ids:
            kwargs["url"] = voice_url(self._public, message.alert_ids)
            kwargs["method"] = "POST"
        else:  # a test page or a notice: nothing to acknowledge, so no callback round trip
            twiml = VoiceResponse()
            twiml.say(message.body, voice="alice")  # the rendered text (test_page_voice.j2)
            kwargs["twiml"] = str(twiml)
        try:
            call = self._client.calls.create(
                to=delivery.address,
                from_=self._from,
                timeout=self._ring,
                status_callback=f"{self._public}/twilio/voice/status",
                status_callback_method="POST",
                status_callback_event=["completed"],
                **kwargs,
            )
        except Exception as exc:
            return classify(exc)
        return SendResult("sent", f"twilio call {call.sid} {call.status}", call.sid)
