"""The daemon's HTTP side: Alertmanager's webhook, the API the CLI uses remotely, health
and metrics.

The webhook answers 2xx only after the transaction commits (Alertmanager then forgets the
notification), 503 when the store is down (Alertmanager retries 5xx) and 4xx with the
reason for a body it will never be able to take (Alertmanager does not retry 4xx).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from escalator import views
from escalator.alerts import act, load_overrides, open_alert_ids
from escalator.daemon import Daemon
from escalator.ingest import AMWebhook, IngestResult, ingest
from escalator.machine import Ack, EscalateNow, Resolve
from escalator.store.db import SchemaNotReady, require_current_schema, transaction
from escalator.store.tables import AlertRow
from escalator.web.calendar import calendar_router
from escalator.web.twilio import twilio_router

log = logging.getLogger("escalator.web")

WEBHOOKS = Counter("escalator_webhook_requests_total", "Alertmanager posts by answer", ["code"])
ALERTS_IN = Counter("escalator_webhook_alerts_total", "Alerts received", ["status"])
OPEN = Gauge("escalator_alerts", "Tracked alerts by state", ["status"])


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=code)


def _authorized(request: Request, token: str | None) -> bool:
    """Bearer token in constant time; with no token set, loopback clients only."""
    if token is None:
        return is_loopback(request.client.host if request.client else None)
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (checked as it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _validation_details(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}" for err in exc.errors()
    ][:20]


class AckRequest(BaseModel):
    ids: list[int] = Field(default_factory=list)
    all: bool = False
    by: str = Field(min_length=1, max_length=200)
    until: datetime | None = None


class ActRequest(BaseModel):
    ids: list[int] = Field(min_length=1)
    by: str = Field(min_length=1, max_length=200)


def create_app(daemon: Daemon, run_engine: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_engine:
            daemon.start()
        try:
            yield
        finally:
            if run_engine:
                daemon.runner.stop()

    app = FastAPI(
        title="escalator", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    config = daemon.config

    def store_down(exc: Exception) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        return _error(503, "store unavailable, retry later")

    @app.post("/webhooks/alertmanager")
    async def alertmanager_webhook(request: Request) -> Response:
        if not _authorized(request, daemon.webhook_token):
            WEBHOOKS.labels("401").inc()
            return _error(401, "missing or wrong bearer token")
        body = await _read_body(request, config.server.max_body_bytes)
        if body is None:
            WEBHOOKS.labels("413").inc()
            return _error(413, f"body larger than {config.server.max_body_bytes} bytes")
        try:
            payload = AMWebhook.model_validate(json.loads(body))
        except json.JSONDecodeError as exc:
            WEBHOOKS.labels("400").inc()
            return _error(400, f"body is not JSON: {exc}")
        except ValidationError as exc:
            WEBHOOKS.labels("422").inc()
            return _error(
                422, "not an Alertmanager version 4 webhook body", details=_validation_details(exc)
            )
        if daemon.committed.covers(payload):  # a repeat of what is already durable
            for alert in payload.alerts:
                ALERTS_IN.labels(alert.status).inc()
            WEBHOOKS.labels("200").inc()
            return JSONResponse(
                {"status": "ok", **IngestResult(updated=len(payload.alerts)).as_dict()}
            )
        try:
            # Sync SQLAlchemy: the transaction runs in the thread pool, off the event loop.
            result = await run_in_threadpool(_ingest, payload)
        except DBAPIError as exc:
            WEBHOOKS.labels("503").inc()
            return store_down(exc)
        daemon.committed.record(payload, result)
        for alert in payload.alerts:
            ALERTS_IN.labels(alert.status).inc()
        if result.opened:
            daemon.runner.wake_sender()  # level 0 is already in the outbox
        if result.unrouted:
            log.warning(
                "no route or default policy for %d alert(s): %s",
                len(result.unrouted),
                ", ".join(result.unrouted),
            )
        WEBHOOKS.labels("200").inc()
        return JSONResponse({"status": "ok", **result.as_dict()})

    def _ingest(payload: AMWebhook):  # type: ignore[no-untyped-def]
        now = daemon.clock.now()
        with transaction(daemon.factory) as session:
            return ingest(
                session, payload, config, daemon.paging(session, now), daemon.policies, now
            )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            with daemon.db.connect() as conn:
                conn.execute(text("SELECT 1"))
            require_current_schema(daemon.db)
        except (DBAPIError, SchemaNotReady) as exc:
            return _error(503, f"not ready: {exc}")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    def metrics() -> Response:
        try:
            with transaction(daemon.factory) as session:
                counts = dict(
                    session.execute(
                        select(AlertRow.status, func.count()).group_by(AlertRow.status)
                    ).all()
                )
            for status in ("triggered", "acknowledged", "resolved"):
                OPEN.labels(status).set(counts.get(status, 0))
        except DBAPIError:
            pass  # the counters still tell something; readyz reports the store
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The API the CLI uses with --server -----------------------------------------------

    def api_guard(request: Request) -> JSONResponse | None:
        if not _authorized(request, daemon.api_token):
            return _error(401, "missing or wrong bearer token")
        return None

    @app.get("/api/v1/alerts")
    def api_list(request: Request, all: bool = False) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        try:
            with transaction(daemon.factory) as session:
                return JSONResponse(views.list_alerts(session, include_resolved=all))
        except DBAPIError as exc:
            return store_down(exc)

    @app.get("/api/v1/alerts/{alert_id}")
    def api_show(request: Request, alert_id: int) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        try:
            with transaction(daemon.factory) as session:
                shown = views.show_alert(session, alert_id)
        except DBAPIError as exc:
            return store_down(exc)
        return JSONResponse(shown) if shown else _error(404, f"no alert {alert_id}")

    def _act(ids: list[int] | None, event: Ack | Resolve | EscalateNow) -> Response:
        now = daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                targets = ids if ids is not None else open_alert_ids(session)
                outcomes = act(
                    session, targets, event, daemon.paging(session, now), daemon.policies, now
                )
        except DBAPIError as exc:
            return store_down(exc)
        daemon.runner.wake()
        return JSONResponse([o.__dict__ for o in outcomes])

    def _known_person(by: str) -> bool:
        return config.person(by) is not None

    @app.post("/api/v1/alerts/ack")
    async def api_ack(request: Request, body: AckRequest) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        if not body.all and not body.ids:
            return _error(422, "give `ids` or `all: true`")
        if not _known_person(body.by):
            return _error(422, f"unknown person {body.by!r}")
        return await run_in_threadpool(
            _act, None if body.all else body.ids, Ack(by=body.by, via="api", until=body.until)
        )

    @app.post("/api/v1/alerts/resolve")
    async def api_resolve(request: Request, body: ActRequest) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        if not _known_person(body.by):
            return _error(422, f"unknown person {body.by!r}")
        return await run_in_threadpool(_act, body.ids, Resolve(by=body.by, via="api"))

    @app.post("/api/v1/alerts/escalate")
    async def api_escalate(request: Request, body: ActRequest) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        if not _known_person(body.by):
            return _error(422, f"unknown person {body.by!r}")
        return await run_in_threadpool(_act, body.ids, EscalateNow(by=body.by, via="api"))

    @app.get("/api/v1/oncall")
    def api_oncall(request: Request, at: datetime | None = None) -> Response:
        if (denied := api_guard(request)) is not None:
            return denied
        when = at or daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                overrides = load_overrides(session, when)
        except DBAPIError as exc:
            return store_down(exc)
        return JSONResponse(views.oncall(config, when, overrides))

    app.include_router(calendar_router(daemon, lambda r: _authorized(r, daemon.api_token)))
    app.include_router(twilio_router(daemon))  # signed by Twilio, not by bearer token
    return app
