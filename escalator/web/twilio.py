"""Twilio's webhooks: acknowledgement from the phone, and delivery reports.

Set these in the Twilio console (README, "Paging channels"), all relative to
`server.public_url`:

- `POST /twilio/sms`            the number's "A message comes in" webhook: replies such as
                                `ACK 42`, `ACK 42 43`, `ACK` (the last SMS page), `ACK ALL`,
                                `RESOLVE 42` (case-insensitive). STOP, END and CANCEL are
                                never used: Twilio intercepts them for opt-out.
- `POST /twilio/voice`          TwiML for escalator's own calls (the call names it).
- `POST /twilio/voice/gather`   the keypress: 1 acknowledges, 9 escalates now.
- `POST /twilio/sms/status`, `POST /twilio/voice/status`   status callbacks (set per
                                message and call by escalator itself).

Every request must carry a valid `X-Twilio-Signature` over `public_url` + path + query and
the form parameters, checked with the SDK's RequestValidator; anything else gets 403. The
person is whoever the configuration gives that phone number; an unknown number is answered
politely and can change nothing. Replies call the service layer
(`escalator.services.alerts`), the same functions as the CLI and the API.

A signed request can be captured and sent again, so each one that acts is recorded by
Twilio's id for it (MessageSid; CallSid and the digits for a keypress), in the action's
transaction: a replay, or Twilio's own retry, gets the same kind of reply and changes
nothing. A keypress acts on what its call offered when it was answered (the alerts read
out, recorded with their levels under the CallSid), and only on those still at that level:
one captured "press 9" cannot walk an alert up the policy. `ACK ALL` acknowledges the
alerts whose pages had gone out to the sender when the message arrived. A store that
cannot be reached gets a polite TwiML reply, never a bare 5xx the person would not see.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from escalator.config import Person
from escalator.daemon import Daemon
from escalator.services import alerts as alert_services
from escalator.services.alerts import Alerts, Callback, Offered, Outcome, Replayed, Selection
from escalator.services.context import Actor
from escalator.store.db import STORE_ERRORS, transaction
from escalator.store.tables import AlertRow
from escalator.text import clean
from escalator.web.bodies import MAX_ID
from escalator.web.openapi import ERRORS, form_body

log = logging.getLogger("escalator.twilio")

_COMMAND = re.compile(r"^\s*(ack|acknowledge|resolve)\b[\s,:#]*(.*?)\s*$", re.I | re.S)
_IDS = re.compile(r"^(?:#?\d+[\s,]*)+$")
_HELP = "Reply ACK and the alert number (ACK 42), ACK ALL, or RESOLVE 42."
_REPLAYED_SMS = "escalator already handled this message; nothing more was changed."
_STORE_DOWN_SMS = (
    "escalator cannot reach its database right now; your reply may not have been "
    "recorded. Please send it again in a minute."
)


_SIGNED = "Signed by Twilio (X-Twilio-Signature over public_url + path and these fields)."
SMS_FORM = form_body({"From": "the sender's number", "Body": "ACK 42 or ACK ALL"}, _SIGNED)
VOICE_FORM = form_body({"To": "the number called", "Called": "the same"}, _SIGNED)
GATHER_FORM = form_body({"To": "the number called", "Digits": "1 or 9"}, _SIGNED)
SMS_STATUS_FORM = form_body({"MessageSid": "", "MessageStatus": "", "ErrorCode": ""}, _SIGNED)
VOICE_STATUS_FORM = form_body({"CallSid": "", "CallStatus": "", "ErrorCode": ""}, _SIGNED)


def _xml(twiml: Any, status: int = 200) -> Response:
    return Response(str(twiml), status_code=status, media_type="application/xml")


def _sms(text: str) -> Response:
    reply = MessagingResponse()
    reply.message(text)
    return _xml(reply)


def _say(twiml: VoiceResponse, text: str) -> None:
    twiml.say(text, voice="alice", language="en-US")


def _ids_text(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)


def twilio_router(daemon: Daemon) -> APIRouter:
    """The routes above, bound to one daemon (its store, config and sender)."""
    router = APIRouter(prefix="/twilio", responses=ERRORS(403, 503))
    settings = daemon.config.channels.twilio
    token = settings.auth_token.resolve() if settings is not None else None
    validator = RequestValidator(token) if token else None
    public_url = (daemon.config.server.public_url or "").rstrip("/")
    by_phone = {p.phone: p for p in daemon.config.people if p.phone}
    pages = daemon.sender.pages  # the daemon's templates and runbooks

    async def signed_form(request: Request) -> dict[str, str] | None:
        """The form parameters if the request is really from Twilio, else None."""
        if validator is None or not public_url:
            log.warning("twilio webhook refused: channels.twilio or server.public_url unset")
            return None
        # The guard (web/limits.py) read the body, capped at server.max_api_body_bytes, and
        # refused requests without a signature header before reading it.
        body = await request.body()
        # Twilio posts application/x-www-form-urlencoded; parsed here rather than through
        # FastAPI's Form so the signature is checked over exactly these parameters.
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        url = public_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not validator.validate(url, form, signature):
            log.warning("twilio webhook %s: bad or missing X-Twilio-Signature", request.url.path)
            return None
        return {key: clean(value) for key, value in form.items()}  # no NUL into the store

    def forbidden() -> Response:
        return Response("invalid Twilio signature", status_code=403, media_type="text/plain")

    services = daemon.services

    def actor(person: Person, via: str) -> Actor:
        return Actor(person.id, via)

    def summarize(verb: str, outcomes: list[Outcome]) -> str:
        done = [o.alert_id for o in outcomes if o.changed]
        unknown = [o.alert_id for o in outcomes if o.status == "unknown"]
        unchanged = [o for o in outcomes if not o.changed and o.status != "unknown"]
        parts = []
        if done:
            parts.append(f"{verb} {_ids_text(done)}.")
        if unchanged:
            parts.append(" ".join(f"#{o.alert_id}: {o.message}." for o in unchanged[:5]))
        if unknown:
            parts.append(f"No such alert: {_ids_text(unknown)}.")
        return " ".join(parts) or f"Nothing to {verb.lower()}."

    # Inbound SMS --------------------------------------------------------------------------

    @router.post("/sms", openapi_extra=SMS_FORM)
    async def inbound_sms(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return forbidden()
        sender = form.get("From", "")
        person = by_phone.get(sender)
        if person is None:
            log.warning("SMS from unknown number %s ignored", sender)
            return _sms("Sorry, this number is not on the escalator roster; nothing was changed.")
        match = _COMMAND.match(form.get("Body", ""))
        if match is None:
            return _sms(f"escalator did not understand that. {_HELP}")
        verb, rest = match.group(1).lower(), match.group(2).strip()
        alerts: Alerts
        beyond: list[str] = []
        impossible = ""
        if rest.lower() == "all" and verb != "resolve":
            alerts = Selection.PAGED_ME_SENT
        elif rest and _IDS.match(rest):
            numbers = re.findall(r"\d+", rest)
            # No alert has a number past the store's integers (the store could not even look
            # it up, and int() refuses thousands of digits): named in the reply, while the
            # real numbers of the same message are still acted on.
            beyond = [n for n in numbers if len(n) > 19 or not 1 <= int(n) <= MAX_ID]
            impossible = f"No such alert: {', '.join('#' + n[:20] for n in beyond)}."
            alerts = sorted({int(x) for x in numbers if x not in beyond})
            if not alerts:
                return _sms(impossible)
        elif not rest and verb != "resolve":
            alerts = Selection.LAST_SMS
        else:
            return _sms(f"escalator did not understand that. {_HELP}")
        sid = form.get("MessageSid", "")
        if not sid:  # Twilio always sends it; without it a replay could not be told apart
            return _sms("escalator could not identify that message; nothing was changed.")
        who = actor(person, "sms")
        once = Callback("twilio", f"sms:{sid}")
        act = alert_services.resolve if verb == "resolve" else alert_services.acknowledge
        done = "Resolved" if verb == "resolve" else "Acknowledged"
        try:
            outcomes = await run_in_threadpool(act, services, who, alerts, callback=once)
        except Replayed:
            log.warning("SMS %s from %s replayed: nothing done", sid, person.id)
            return _sms(_REPLAYED_SMS)
        except STORE_ERRORS as exc:
            log.error("SMS from %s: store unavailable: %s", person.id, exc)
            return _sms(_STORE_DOWN_SMS)
        log.info("SMS %s from %s: %d alert(s)", verb, person.id, len(outcomes))
        reply = summarize(done, outcomes)
        return _sms(f"{reply} {impossible}" if beyond else reply)

    # Voice ------------------------------------------------------------------------------------

    def call_target(form: dict[str, str], request: Request) -> tuple[Person | None, str]:
        # escalator places the calls, so the person is the number called (To).
        person = by_phone.get(form.get("To", "")) or by_phone.get(form.get("Called", ""))
        return person, request.query_params.get("alerts", "")

    def alert_ids(spec: str) -> list[int]:
        return sorted({int(x) for x in spec.split(".") if x.isdigit() and len(x) < 19})

    def alerts_for(spec: str) -> Alerts:
        return Selection.PAGED_ME_SENT if spec == "all" else alert_ids(spec)

    def gather_url(spec: str) -> str:
        return f"{public_url}/twilio/voice/gather?{urlencode({'alerts': spec})}"

    def spoken(person: Person, call: str, alerts: Alerts) -> str:
        # What is read out is what the keypress may act on: recorded under the CallSid.
        ids = alert_services.offer(services, actor(person, "voice"), call, alerts)
        with transaction(daemon.factory) as session:
            rows = list(
                session.scalars(select(AlertRow).where(AlertRow.id.in_(ids)).order_by(AlertRow.id))
            )
        return pages.spoken(rows)  # notify/templates/bundle_voice.j2 (or its override)

    def gather(twiml: VoiceResponse, spec: str, text: str) -> None:
        g = twiml.gather(num_digits=1, action=gather_url(spec), method="POST", timeout=8)
        _say(g, text)

    @router.post("/voice", openapi_extra=VOICE_FORM)
    async def voice(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return forbidden()
        person, spec = call_target(form, request)
        twiml = VoiceResponse()
        if person is None:
            _say(twiml, "This is escalator. This number is not on the roster. Goodbye.")
            twiml.hangup()
            return _xml(twiml)
        call = form.get("CallSid", "")
        try:
            summary = await run_in_threadpool(spoken, person, call, alerts_for(spec))
        except STORE_ERRORS as exc:
            log.error("voice call for %s: store unavailable: %s", person.id, exc)
            _say(twiml, "This is escalator. It cannot reach its database. Check your alerts.")
            twiml.hangup()
            return _xml(twiml)
        keys = "Press 1 to acknowledge, or 9 to escalate now."
        gather(twiml, spec, f"This is escalator, for {person.display}. {summary} {keys}")
        gather(twiml, spec, keys)
        _say(twiml, "No key was pressed. The escalation continues. Goodbye.")
        return _xml(twiml)

    @router.post("/voice/gather", openapi_extra=GATHER_FORM)
    async def voice_gather(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return forbidden()
        person, spec = call_target(form, request)
        twiml = VoiceResponse()
        if person is None:
            _say(twiml, "This number is not on the roster; nothing was changed. Goodbye.")
            twiml.hangup()
            return _xml(twiml)
        digits = form.get("Digits", "").strip()
        call = form.get("CallSid", "")
        if digits in ("1", "9") and call:
            act = alert_services.acknowledge if digits == "1" else alert_services.escalate_now
            once = Callback("twilio", f"keypress:{call}:{digits}")
            who = actor(person, "voice")
            try:
                outcomes = await run_in_threadpool(act, services, who, Offered(call), callback=once)
            except Replayed:
                log.warning("keypress %s of call %s replayed: nothing done", digits, call)
                _say(twiml, "That key press was already handled. Nothing more was changed.")
                twiml.hangup()
                return _xml(twiml)
            except STORE_ERRORS as exc:
                log.error("keypress of %s: store unavailable: %s", person.id, exc)
                _say(twiml, "escalator cannot reach its database. Nothing was changed. Goodbye.")
                twiml.hangup()
                return _xml(twiml)
            done = sum(o.changed for o in outcomes)
            verb = "Acknowledged" if digits == "1" else "Escalating"
            text = (
                f"{verb} {done} alert{'' if done == 1 else 's'}{'' if digits == '1' else ' now'}."
            )
            moved = sum(o.message.startswith(alert_services.MOVED) for o in outcomes)
            if moved:
                were = "was" if moved == 1 else "were"
                text += f" {moved} changed since this call began and {were} left alone."
            _say(twiml, f"{text} Goodbye.")
        elif digits in ("1", "9"):
            _say(twiml, "escalator could not identify this call; nothing was changed. Goodbye.")
        else:
            gather(twiml, spec, "Sorry. Press 1 to acknowledge, or 9 to escalate now.")
            _say(twiml, "Goodbye.")
        return _xml(twiml)

    # Status callbacks ---------------------------------------------------------------------------

    async def status(request: Request, sid_key: str, status_key: str) -> Response:
        form = await signed_form(request)
        if form is None:
            return forbidden()
        sid, state = form.get(sid_key, ""), form.get(status_key, "")
        detail = f"error {form['ErrorCode']}" if form.get("ErrorCode") else ""
        if sid and state:
            changed = await run_in_threadpool(daemon.sender.delivery_status, sid, state, detail)
            if changed:
                daemon.runner.wake_sender()  # a fallback page may be due now
        return _xml(MessagingResponse())

    @router.post("/sms/status", openapi_extra=SMS_STATUS_FORM)
    async def sms_status(request: Request) -> Response:
        return await status(request, "MessageSid", "MessageStatus")

    @router.post("/voice/status", openapi_extra=VOICE_STATUS_FORM)
    async def voice_status(request: Request) -> Response:
        return await status(request, "CallSid", "CallStatus")

    return router
