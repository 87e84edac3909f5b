"""Slack's requests to the app: buttons and the status-update modal, and `/escalator`.

Set these in the Slack app (README "Slack", deploy/slack-app-manifest.yaml), relative to
`server.public_url`:

- `POST /slack/interactions`  Interactivity: the Acknowledge, Escalate now, Resolve and
                              Snooze 30m buttons on every page and notice, "Post status
                              update" (opens a modal) and the modal's submission.
- `POST /slack/commands`      the `/escalator` slash command (escalator.web.slack_commands).

Every request must carry a valid `X-Slack-Signature` over its exact body, made with the
app's signing secret, and an `X-Slack-Request-Timestamp` within five minutes (checked by
slack_sdk's SignatureVerifier); anything else gets 403 and changes nothing. The Slack user
is mapped to a roster person (their `slack_user`, else their e-mail); an unknown user gets
an ephemeral refusal and changes nothing. Actions call the same services as the CLI, the
HTTP API and Twilio replies (`escalator.services.alerts`, `escalator.services.incidents`),
as the actor (person, "slack"); a repeated click is harmless (acknowledging an
acknowledged alert changes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from escalator.config import Person
from escalator.daemon import Daemon
from escalator.notify import slack_blocks as blocks
from escalator.notify.channels.slack_client import classify
from escalator.read import views
from escalator.roster.overrides import load_overrides
from escalator.services import alerts as alert_services
from escalator.services import incidents as incident_services
from escalator.services.alerts import Outcome, Selection
from escalator.services.context import Actor, ServiceError
from escalator.store.db import STORE_ERRORS, transaction
from escalator.store.tables import AlertRow
from escalator.text import clean
from escalator.web.bodies import BadBody, parse_json
from escalator.web.openapi import ERRORS, form_body
from escalator.web.slack_commands import USAGE, Command, CommandError, parse

log = logging.getLogger("escalator.slack")

SNOOZE = timedelta(minutes=30)
_SIGNED = "Signed by Slack (X-Slack-Signature, X-Slack-Request-Timestamp within 5 minutes)."
_LISTED = 25


def _forbidden() -> Response:
    return Response("invalid Slack signature", status_code=403, media_type="text/plain")


def _refusal(user_id: str) -> str:
    return (
        f"Sorry, <@{user_id}> is not on escalator's roster, so nothing was changed. Ask an "
        "admin to add your Slack member ID as `slack_user` (or your Slack e-mail as `email`)."
    )


def _summary(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return "Nothing to do: no such alerts open."
    lines = []
    for o in outcomes:
        mark = ":white_check_mark:" if o.changed else ":heavy_minus_sign:"
        lines.append(f"{mark} #{o.alert_id}: {o.message}")
    return "\n".join(lines)


def _answered(respond: Callable[[str | None, str], None], url: str | None, text: str) -> Response:
    """200 at once (Slack wants an answer within 3 s); the ephemeral reply follows."""
    return Response(status_code=200, background=BackgroundTask(respond, url, text))


def slack_router(daemon: Daemon) -> APIRouter:
    """The routes above, bound to one daemon (its store, config and Slack app)."""
    router = APIRouter(prefix="/slack", responses=ERRORS(403))
    app = daemon.slack
    verifier = SignatureVerifier(app.signing_secret) if app is not None else None

    async def signed_form(request: Request) -> dict[str, str] | None:
        """The form fields if the request really is from Slack and recent, else None."""
        if verifier is None:
            log.warning("slack request refused: channels.slack is not configured")
            return None
        # The guard (web/limits.py) read the body, capped at server.max_api_body_bytes, and
        # refused requests without a signature or with a stale timestamp before reading it.
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        try:
            valid = verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except ValueError:  # a timestamp that is not a number
            valid = False
        if not valid:
            log.warning("slack %s: bad signature or stale timestamp", request.url.path)
            return None
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: clean(value) for key, value in form}

    def person_of(user_id: str) -> Person | None:
        assert app is not None
        if not user_id:
            return None
        return app.directory.person_of(user_id)

    services = daemon.services

    def actor(person: Person) -> Actor:
        return Actor(person.id, "slack")

    def woke(outcomes: list[Outcome]) -> list[Outcome]:
        daemon.runner.wake_sender()  # the message updates and any pages are in the outbox
        return outcomes

    def post_update(
        person: Person, alert_id: int, message: str, status: str, eta: str | None
    ) -> str:
        done = incident_services.post_update(
            services, actor(person), alert_id, message, status=status, eta=eta
        )
        return done.channel

    def respond(url: str | None, text: str) -> None:
        """An ephemeral answer to the clicking user, through the click's response_url."""
        if not url:
            return
        try:
            WebhookClient(url, timeout=10).send(
                text=text, response_type="ephemeral", replace_original=False
            )
        except Exception as exc:  # the click itself was handled; only the reply is lost
            log.warning("slack response_url: %s", exc)

    # buttons and the modal ------------------------------------------------------------------

    def block_action(payload: dict[str, Any]) -> Response:
        assert app is not None
        user_id = str((payload.get("user") or {}).get("id") or "")
        response_url = payload.get("response_url")
        actions = payload.get("actions") or []
        action = actions[0] if actions else {}
        action_id = action.get("action_id")
        if action_id not in blocks.ACTIONS:
            return Response(status_code=200)  # not ours (or a link button): nothing to do
        value = str(action.get("value") or "")
        if not value.isdigit() or len(value) > 18:  # 18 digits: within a 64-bit id
            return JSONResponse({"error": "button value is not an alert id"}, status_code=400)
        alert_id = int(value)
        person = person_of(user_id)
        if person is None:
            return _answered(respond, response_url, _refusal(user_id))
        if action_id == blocks.UPDATE:
            with transaction(daemon.factory) as session:
                alert = session.get(AlertRow, alert_id)
                name = alert.alertname if alert is not None else "?"
            app.client.views_open(
                trigger_id=payload.get("trigger_id"), view=blocks.update_modal(alert_id, name)
            )
            return Response(status_code=200)
        who, ids = actor(person), [alert_id]
        if action_id == blocks.ACK:
            outcomes = alert_services.acknowledge(services, who, ids)
        elif action_id == blocks.SNOOZE:
            outcomes = alert_services.snooze(services, who, ids, SNOOZE)
        elif action_id == blocks.ESCALATE:
            outcomes = alert_services.escalate_now(services, who, ids)
        else:
            outcomes = alert_services.resolve(services, who, ids)
        return _answered(respond, response_url, _summary(woke(outcomes)))

    def view_submission(payload: dict[str, Any]) -> Response:
        view = payload.get("view") or {}
        if view.get("callback_id") != blocks.UPDATE_VIEW:
            return Response(status_code=200)
        user_id = str((payload.get("user") or {}).get("id") or "")

        def error(text: str) -> Response:
            return JSONResponse({"response_action": "errors", "errors": {"impact": text}})

        meta = str(view.get("private_metadata") or "")
        if not meta.isdigit() or len(meta) > 18:
            return error("this form names no incident")
        person = person_of(user_id)
        if person is None:
            return error(_refusal(user_id))
        try:
            status, message, eta = blocks.modal_values(view)
            post_update(person, int(meta), message, status, eta)
        except (ValueError, ServiceError) as exc:
            return error(str(exc))
        return Response(status_code=200)  # an empty 200 closes the modal

    @router.post(
        "/interactions",
        openapi_extra=form_body({"payload": "the interaction, JSON"}, _SIGNED),
    )
    async def interactions(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return _forbidden()
        try:
            payload = parse_json((form.get("payload") or "").encode())  # strict, as bodies
            assert isinstance(payload, dict)
        except (BadBody, AssertionError):
            return JSONResponse({"error": "no interaction payload"}, status_code=400)
        kind = payload.get("type")
        handler = {"block_actions": block_action, "view_submission": view_submission}.get(kind)
        if handler is None:
            return Response(status_code=200)
        try:
            return await run_in_threadpool(handler, payload)
        except STORE_ERRORS as exc:
            log.error("slack interaction: store unavailable: %s", exc)
            respond(payload.get("response_url"), "escalator's store is unavailable; try again")
        except ServiceError as exc:  # a refusal by the service (no such incident, ...)
            respond(payload.get("response_url"), str(exc))
        except SlackApiError as exc:  # looking the user up, or opening the modal
            log.error("slack interaction: %s", classify(exc, app.health if app else None).detail)
            respond(payload.get("response_url"), "escalator could not reach Slack; try again")
        return Response(status_code=200)

    # /escalator ---------------------------------------------------------------------------

    def command(user_id: str, text: str) -> str:
        try:
            cmd = parse(text)
        except CommandError as exc:
            return str(exc)
        if cmd.verb == "help":
            return USAGE
        person = person_of(user_id)
        if person is None:
            return _refusal(user_id)
        return run_command(cmd, person)

    def run_command(cmd: Command, person: Person) -> str:
        who = actor(person)
        if cmd.verb == "ack":
            alerts = Selection.OPEN if cmd.all else list(cmd.ids)
            return _summary(woke(alert_services.acknowledge(services, who, alerts)))
        if cmd.verb == "resolve":
            return _summary(woke(alert_services.resolve(services, who, list(cmd.ids))))
        if cmd.verb == "update":
            try:
                channel = post_update(person, cmd.ids[0], cmd.text, "IN PROGRESS", None)
            except ServiceError as exc:
                return str(exc)
            return f"Update recorded for #{channel}; it is posted on the next tick."
        if cmd.verb == "list":
            with transaction(daemon.factory) as session:
                listed = views.list_alerts(session, limit=_LISTED + 1)
            if not listed:
                return "No open alerts."
            lines = [
                f"#{a['id']} [{(a['severity'] or 'none').upper()}] {a['alertname']}: "
                f"{a['status']}"
                + (f" by {a['acked_by']}" if a["acked_by"] else "")
                + f" (level {a['level']})"
                for a in listed[:_LISTED]
            ]
            if len(listed) > _LISTED:
                lines.append("... and more: `escalator list`")
            return "\n".join(lines)
        now = daemon.clock.now()
        with transaction(daemon.factory) as session:
            overrides = load_overrides(session, now)
        lines = []
        for entry in views.oncall(daemon.config, now, overrides):
            people = ", ".join(entry["people"]) or "nobody"
            until = f" until {entry['until']}" if entry["until"] else ""
            lines.append(f"{entry['kind']} {entry['name']}: {people}{until}")
        return "\n".join(lines) or "No rotations or roles configured."

    @router.post(
        "/commands",
        openapi_extra=form_body({"user_id": "", "text": "ack 12, list, oncall"}, _SIGNED),
    )
    async def commands(request: Request) -> Response:
        form = await signed_form(request)
        if form is None:
            return _forbidden()
        user_id, text = form.get("user_id", ""), form.get("text", "")
        try:
            answer = await run_in_threadpool(command, user_id, text)
        except STORE_ERRORS as exc:
            log.error("slack command: store unavailable: %s", exc)
            answer = "escalator's store is unavailable; try again"
        except SlackApiError as exc:
            log.error("slack command: %s", classify(exc, app.health if app else None).detail)
            answer = "escalator could not reach Slack to look you up; try again"
        return JSONResponse({"response_type": "ephemeral", "text": answer})

    return router
