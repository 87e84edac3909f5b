"""`POST /webhooks/alertmanager`: Alertmanager's webhook.

Answers 2xx only after the transaction commits (Alertmanager then forgets the
notification), 503 when the store is down (Alertmanager retries 5xx) and 4xx with the
reason for a body it will never be able to take (Alertmanager does not retry 4xx).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from escalator.daemon import Daemon
from escalator.ingest.alertmanager import AMWebhook, IngestResult, ingest
from escalator.ingest.heartbeat_store import record_beats, split_beats
from escalator.ingest.lookup import FifoTurns
from escalator.store.db import STORE_ERRORS, is_postgres, transaction
from escalator.web.auth import authorized, error, validation_details
from escalator.web.bodies import BadBody, bound_depth, parse_json
from escalator.web.openapi import ERRORS, json_body

log = logging.getLogger("escalator.web")


def _validated(value: Any) -> AMWebhook:
    """The body as AMWebhook. What the model accepts nests no deeper than its own fields,
    so the depth bound (a walk of the whole body, 9% of a repeated post's cost) is checked
    only when something is refused: the refusal's details, or a refused entry kept as sent
    (ingest/rejections.py), are what deep nesting could break."""
    try:
        payload = AMWebhook.model_validate(value)
    except ValidationError:
        bound_depth(value)
        raise
    if payload.rejected:
        bound_depth(value)
    return payload


def webhooks_router(daemon: Daemon) -> APIRouter:
    router = APIRouter()
    config = daemon.config
    metrics = daemon.metrics

    def count_alerts(payload: AMWebhook) -> None:
        """One counter increment per status, not per alert (a label lookup takes a lock)."""
        firing = sum(alert.status == "firing" for alert in payload.alerts)
        if firing:
            metrics.webhook_alerts.labels("firing").inc(firing)
        if len(payload.alerts) > firing:
            metrics.webhook_alerts.labels("resolved").inc(len(payload.alerts) - firing)

    @router.post(
        "/webhooks/alertmanager",
        responses=ERRORS(400, 401, 403, 408, 413, 415, 422, 503),
        openapi_extra=json_body(AMWebhook, "Alertmanager's version-4 webhook body."),
    )
    async def alertmanager_webhook(request: Request) -> Response:
        if not authorized(request, daemon.webhook_token):
            metrics.webhook_requests.labels("401").inc()
            return error(401, "missing or wrong bearer token")
        # The guard (web/limits.py) has read the body whole, capped and within the deadline.
        try:
            payload = _validated(parse_json(await request.body(), bounded=False))
        except BadBody as exc:
            metrics.webhook_requests.labels(str(exc.code)).inc()
            return error(exc.code, exc.message)
        except ValidationError as exc:
            metrics.webhook_requests.labels("422").inc()
            return error(
                422, "not an Alertmanager version 4 webhook body", details=validation_details(exc)
            )
        # Heartbeat alerts (Watchdog) are beats, never tracked: a body carrying one always
        # takes the database path, since the beat itself is what must be recorded. The
        # repeat cache never holds a beat's alert (only what ingest committed), so a body it
        # covers has none, and is answered before looking for beats.
        if daemon.committed.covers(payload):  # a repeat already durable
            count_alerts(payload)
            metrics.webhook_requests.labels("200").inc()
            return JSONResponse(
                {"status": "ok", **IngestResult(updated=len(payload.alerts)).as_dict()}
            )
        beats, payload = split_beats(payload, config)
        try:
            # Sync SQLAlchemy: the transaction runs in the thread pool, off the event loop.
            result = await run_in_threadpool(_ingest, payload, beats)
        except STORE_ERRORS as exc:
            metrics.webhook_requests.labels("503").inc()
            log.error("store unavailable: %s", exc)
            return error(503, "store unavailable, retry later")
        daemon.committed.record(payload, result)
        count_alerts(payload)
        if result.opened:
            daemon.runner.wake_sender()  # level 0 is already in the outbox
        if beats and result.resolved:
            daemon.runner.wake()
        if result.unrouted:
            log.warning(
                "no route or default policy for %d alert(s): %s",
                len(result.unrouted),
                ", ".join(result.unrouted),
            )
        metrics.webhook_requests.labels("200").inc()
        return JSONResponse({"status": "ok", **result.as_dict()})

    # SQLite: posts take the write lock in arrival order (FifoTurns); PostgreSQL: no queue.
    turns: AbstractContextManager[None] = nullcontext() if is_postgres(daemon.db) else FifoTurns()

    def _ingest(payload: AMWebhook, beats: set[str]) -> IngestResult:
        with turns, transaction(daemon.factory) as session:
            now = daemon.clock.now()
            paging = daemon.paging(session, now)
            resolved = (
                record_beats(session, beats, "alertmanager", config, paging, daemon.policies, now)
                if beats
                else []
            )
            result = ingest(session, payload, config, paging, daemon.policies, now)
            result.heartbeats = sorted(beats)
            result.resolved.extend(resolved)
            return result

    return router
