"""The limits the ingest figures are measured against, served by uvicorn like the daemon.

`/parse`: parse and validate the Alertmanager body exactly as escalator does, then answer.
That is the ceiling for repeats (a repeat changes nothing, so it needs no write).
`/insert`: parse the same way, then bulk-insert the rows a new alert costs (the alert, its
`opened` and `paged` timeline entries and its outbox row) with SQLAlchemy Core in one
transaction. That is the ceiling for new alerts: no state machine, no routing, no locks.

Run: python bench/bare_app.py DATABASE_URL PORT
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool

from escalator.incidents.protocol import alert_identity
from escalator.ingest.alertmanager import AMWebhook
from escalator.store.db import make_engine, upgrade
from escalator.store.tables import AlertRow, OutboxRow, PolicyRow, TimelineRow
from escalator.web.server import settle_heap


def create_bare_app(database_url: str) -> FastAPI:
    engine = make_engine(database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(PolicyRow.__table__),
            [{"id": "bare", "name": "bare", "body": {}, "created_at": now}],
        )
    app = FastAPI()

    async def parse(request: Request) -> AMWebhook:
        return AMWebhook.model_validate(json.loads(await request.body()))

    def write(payload: AMWebhook) -> None:
        now = datetime.now(UTC)
        alerts: list[dict[str, Any]] = [
            {
                "fingerprint": a.fingerprint,
                "starts_at": a.startsAt,
                "ends_at": None,
                "alertname": a.labels.get("alertname", ""),
                "identity": alert_identity(a.labels),
                "severity": a.labels.get("severity"),
                "labels": a.labels,
                "annotations": a.annotations,
                "generator_url": a.generatorURL,
                "policy_name": "bare",
                "policy_id": "bare",
                "status": "triggered",
                "level": 0,
                "next_step": 1,
                "repeats_done": 0,
                "opened_at": now,
                "clock_base": now,
                "next_action_at": now,
                "updated_at": now,
            }
            for a in payload.alerts
        ]
        with engine.begin() as conn:
            ids = conn.execute(
                insert(AlertRow.__table__).returning(AlertRow.__table__.c.id), alerts
            ).scalars().all()
            conn.execute(
                insert(TimelineRow.__table__),
                [
                    {"alert_id": i, "at": now, "kind": k, "detail": k, "level": 0}
                    for i in ids
                    for k in ("opened", "paged")
                ],
            )
            conn.execute(
                insert(OutboxRow.__table__),
                [
                    {
                        "alert_id": i, "recipient_kind": "person", "recipient": "p0",
                        "method": "console", "level": 0, "urgency": "page",
                        "condition": "unresolved", "reason": "escalation", "payload": {},
                        "status": "pending", "due_at": now, "attempts": 0, "created_at": now,
                    }
                    for i in ids
                ],
            )

    @app.post("/parse")
    async def parse_only(request: Request) -> JSONResponse:
        payload = await parse(request)
        return JSONResponse({"status": "ok", "alerts": len(payload.alerts)})

    @app.post("/insert")
    async def parse_and_insert(request: Request) -> JSONResponse:
        payload = await parse(request)
        await run_in_threadpool(write, payload)
        return JSONResponse({"status": "ok", "alerts": len(payload.alerts)})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    app = create_bare_app(sys.argv[1])
    # The collector tuned as `escalator serve` tunes it, so the limit and the daemon are
    # compared like for like.
    settle_heap()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
