"""`POST /webhooks/alertmanager`: Alertmanager's webhook.

Answers 2xx only after the transaction commits (Alertmanager then forgets the
notification), 503 when the store is down (Alertmanager retries 5xx) and 4xx with the
reason for a body it will never be able to take (Alertmanager does not retry 4xx).
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager, nullcontext

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from escalator.daemon import Daemon
from escalator.ingest.alertmanager import AMWebhook, IngestResult, ingest
from escalator.ingest.heartbeat_store import record_beats, split_beats
from escalator.ingest.lookup import FifoTurns
from escalator.store.db import is_postgres, transaction
from escalator.web.auth import authorized, error, read_body, validation_details

log = logging.getLogger("escalator.web")

WEBHOOKS = Counter("escalator_webhook_requests_total", "Alertmanager posts by answer", ["code"])
ALERTS_IN = Counter("escalator_webhook_alerts_total", "Alerts received", ["status"])


def _count_alerts(payload: AMWebhook) -> None:
    """One counter increment per status, not per alert (a label lookup takes a lock)."""
    firing = sum(alert.status == "firing" for alert in payload.alerts)
    if firing:
        ALERTS_IN.labels("firing").inc(firing)
    if len(payload.alerts) > firing:
        ALERTS_IN.labels("resolved").inc(len(payload.alerts) - firing)


def webhooks_router(daemon: Daemon) -> APIRouter:
    router = APIRouter()
    config = daemon.config

    @router.post("/webhooks/alertmanager")
    async def alertmanager_webhook(request: Request) -> Response:
        if not authorized(request, daemon.webhook_token):
            WEBHOOKS.labels("401").inc()
            return error(401, "missing or wrong bearer token")
        body = await read_body(request, config.server.max_body_bytes)
        if body is None:
            WEBHOOKS.labels("413").inc()
            return error(413, f"body larger than {config.server.max_body_bytes} bytes")
        try:
            payload = AMWebhook.model_validate(json.loads(body))
        except json.JSONDecodeError as exc:
            WEBHOOKS.labels("400").inc()
            return error(400, f"body is not JSON: {exc}")
        except ValidationError as exc:
            WEBHOOKS.labels("422").inc()
            return error(
                422, "not an Alertmanager version 4 webhook body", details=validation_details(exc)
            )
        # Heartbeat alerts (Watchdog) are beats, never tracked: a body carrying one always
        # takes the database path, since the beat itself is what must be recorded. The
        # repeat cache never holds a beat's alert (only what ingest committed), so a body it
        # covers has none, and is answered before looking for beats.
        if daemon.committed.covers(payload):  # a repeat already durable
            _count_alerts(payload)
            WEBHOOKS.labels("200").inc()
            return JSONResponse(
                {"status": "ok", **IngestResult(updated=len(payload.alerts)).as_dict()}
            )
        beats, payload = split_beats(payload, config)
        try:
            # Sync SQLAlchemy: the transaction runs in the thread pool, off the event loop.
            result = await run_in_threadpool(_ingest, payload, beats)
        except DBAPIError as exc:
            WEBHOOKS.labels("503").inc()
            log.error("store unavailable: %s", exc)
            return error(503, "store unavailable, retry later")
        daemon.committed.record(payload, result)
        _count_alerts(payload)
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
        WEBHOOKS.labels("200").inc()
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
