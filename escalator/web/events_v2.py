"""`POST /v2/enqueue` and `POST /v2/change/enqueue`: PagerDuty's Events API v2, same
paths, same bodies, same answers, so a tool configured for PagerDuty can point at escalator.

The routing key in the body is the credential (as at PagerDuty); it is compared in
constant time against every configured integration. Answers: 202 only after the
transaction committed; 400 `invalid event` with the reasons and nothing written; 429 past
the integration's rate limit (senders back off and retry); 503 when the store is down
(senders retry 5xx).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from escalator.config import Integration
from escalator.daemon import Daemon
from escalator.ingest import events_v2
from escalator.ingest.events_v2 import InvalidEvent
from escalator.ingest.events_v2_store import change, enqueue
from escalator.store.db import STORE_ERRORS, transaction
from escalator.web.bodies import BadBody, parse_json
from escalator.web.openapi import ERRORS, free_json_body

T = TypeVar("T")


def events_v2_router(daemon: Daemon) -> APIRouter:
    router = APIRouter(responses=ERRORS(400, 429, 503))
    config = daemon.config
    integrations = daemon.integrations

    def _answer(code: int, body: dict[str, Any], path: str) -> JSONResponse:
        daemon.metrics.events_v2_requests.labels(path, str(code)).inc()
        return JSONResponse(body, status_code=code)

    async def _accept(
        request: Request, path: str, parse: Callable[[Any], Any]
    ) -> tuple[Any, Integration] | JSONResponse:
        """The parsed event and its integration, or the PagerDuty-shaped refusal."""
        # The guard (web/limits.py) has read the body, capped at server.max_body_bytes.
        try:
            body = parse_json(await request.body())
        except BadBody as exc:
            return _answer(
                400, {**events_v2.INVALID, "errors": ["Malformed JSON", exc.message]}, path
            )
        try:
            event = parse(body)
        except InvalidEvent as exc:
            return _answer(400, exc.answer(), path)
        stamp = getattr(event, "timestamp", None)
        try:
            if stamp is not None:
                stamp.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        except OverflowError:
            errors = ["'payload.timestamp' is out of range in UTC"]
            return _answer(400, {**events_v2.INVALID, "errors": errors}, path)
        integration = integrations.find(event.routing_key)
        if integration is None:
            return _answer(400, {**events_v2.INVALID, "errors": ["Invalid routing key"]}, path)
        if not integrations.allow(integration):
            return _answer(429, events_v2.THROTTLED, path)
        return event, integration

    async def _store(
        path: str, work: Callable[[Session, datetime], T]
    ) -> T | JSONResponse:
        """`work` in one transaction at the daemon's time, off the event loop; a store
        error is PagerDuty's 503 (senders retry it)."""
        now = daemon.clock.now()

        def run() -> T:
            with transaction(daemon.factory) as session:
                return work(session, now)

        try:
            return await run_in_threadpool(run)
        except STORE_ERRORS:
            return _answer(503, {"status": "error", "message": "store unavailable"}, path)

    @router.post(
        "/v2/enqueue",
        status_code=202,
        openapi_extra=free_json_body(
            "A PagerDuty Events API v2 event (trigger, acknowledge, resolve)."
        ),
    )
    async def enqueue_event(request: Request) -> Response:
        path = "/v2/enqueue"
        accepted = await _accept(request, path, events_v2.parse_event)
        if isinstance(accepted, JSONResponse):
            return accepted
        event, integration = accepted
        dedup_key = await _store(
            path,
            lambda session, now: enqueue(
                session, event, integration, config, daemon.paging(session, now),
                daemon.policies, now,
            ),
        )  # fmt: skip
        if isinstance(dedup_key, JSONResponse):
            return dedup_key
        daemon.runner.wake()
        daemon.runner.wake_sender()
        return _answer(202, {**events_v2.ACCEPTED, "dedup_key": dedup_key}, path)

    @router.post(
        "/v2/change/enqueue",
        status_code=202,
        openapi_extra=free_json_body("A PagerDuty Events API v2 change event."),
    )
    async def enqueue_change(request: Request) -> Response:
        path = "/v2/change/enqueue"
        accepted = await _accept(request, path, events_v2.parse_change)
        if isinstance(accepted, JSONResponse):
            return accepted
        event, integration = accepted
        stored = await _store(path, lambda session, now: change(session, event, integration, now))
        if isinstance(stored, JSONResponse):
            return stored
        return _answer(202, events_v2.CHANGE_ACCEPTED, path)

    return router
