"""`/healthz` (the process answers), `/readyz` (store reachable, schema current, the engine
and every delivery lane cycling, Slack accepting the bot token when it is configured) and
`/metrics` (Prometheus text, with alert counts by state read at scrape time)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from escalator.daemon import Daemon
from escalator.store.db import SchemaNotReady, require_current_schema, transaction
from escalator.store.tables import AlertRow
from escalator.web.auth import error

OPEN = Gauge("escalator_alerts", "Tracked alerts by state", ["status"])


def health_router(daemon: Daemon) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz() -> Response:
        try:
            with daemon.db.connect() as conn:
                conn.execute(text("SELECT 1"))
            require_current_schema(daemon.db)
        except (DBAPIError, SchemaNotReady) as exc:
            return error(503, f"not ready: {exc}")
        # The engine and every delivery lane must be cycling: a wedged tick or lane is an
        # outage even when the store answers.
        stalled = daemon.runner.ready()
        if stalled:
            return error(503, f"not ready: {stalled}")
        if daemon.slack is not None and daemon.slack.health.problem:
            return error(503, f"not ready: {daemon.slack.health.problem}")
        return JSONResponse({"status": "ready"})

    @router.get("/metrics")
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
            daemon.sender.observe_queue()  # delivery queue depth and oldest due page
        except DBAPIError:
            pass  # the counters still tell something; readyz reports the store
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
