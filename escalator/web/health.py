"""`/healthz` (the process answers), `/readyz` (store reachable, schema current, the engine
and every delivery lane cycling, Slack accepting the bot token when it is configured) and
`/metrics` (Prometheus text, with alert counts by state read at scrape time)."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from escalator.daemon import Daemon
from escalator.store.db import STORE_ERRORS, SchemaNotReady, require_current_schema, transaction
from escalator.store.deadline import Deadlines
from escalator.store.tables import AlertRow
from escalator.web.auth import error


def health_router(daemon: Daemon) -> APIRouter:
    router = APIRouter()
    daemon_deadlines = Deadlines.from_env()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        # Liveness: async and touching nothing, so it answers from the event loop even
        # when the store hangs and every worker thread waits on it (a failed liveness
        # probe restarts a replica that a partition would not have hurt).
        return {"status": "ok"}

    def store_check() -> None:
        with daemon.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        require_current_schema(daemon.db)

    @router.get("/readyz")
    async def readyz() -> Response:
        try:
            # Bounded as a whole, whether the wait is for a worker thread, a pooled
            # connection or the server; the check itself is abandoned, not waited for.
            with anyio.fail_after(daemon_deadlines.ready):
                await anyio.to_thread.run_sync(store_check, abandon_on_cancel=True)
        except TimeoutError:
            return error(503, f"not ready: store did not answer within {daemon_deadlines.ready}s")
        except (*STORE_ERRORS, SchemaNotReady) as exc:
            return error(503, f"not ready: {exc}")
        # The engine and every delivery lane must be cycling: a wedged tick or lane is an
        # outage even when the store answers.
        stalled = daemon.runner.ready()
        if stalled:
            return error(503, f"not ready: {stalled}")
        if daemon.slack is not None and daemon.slack.health.problem:
            # Degraded, still ready: every replica shares the bot token, so a 503 here
            # would take all of them out of service at once and Alertmanager could then
            # deliver nothing, SMS and voice included. The Slack problem is named here and
            # alerted on (escalator_slack_auth_failed, rule EscalatorSlackAuthFailed).
            return JSONResponse({"status": "ready", "degraded": [daemon.slack.health.problem]})
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
                daemon.metrics.alerts.labels(status).set(counts.get(status, 0))
            daemon.sender.observe_queue()  # delivery queue depth and oldest due page
        except STORE_ERRORS:
            pass  # the counters still tell something; readyz reports the store
        return PlainTextResponse(daemon.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
