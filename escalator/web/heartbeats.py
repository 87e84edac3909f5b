"""`POST /heartbeats/{name}` (a cron job or backup says "I ran") and
`GET /api/v1/heartbeats` (what `escalator heartbeat list --server` shows).

Each heartbeat has its own bearer token, so a backup host's token can beat its own
heartbeat and nothing else; tokens are compared in constant time, and a name that does not
exist answers exactly like a wrong token (401), so the endpoint does not list names.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from escalator.daemon import Daemon
from escalator.ingest import heartbeats
from escalator.ingest.heartbeat_store import list_heartbeats, record_beats
from escalator.store.db import STORE_ERRORS, transaction
from escalator.web.openapi import ERRORS


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" and given.strip() else None


def heartbeats_router(daemon: Daemon, authorized: Callable[[Request], bool]) -> APIRouter:
    router = APIRouter(responses=ERRORS(401, 503))
    config = daemon.config
    # Resolved once: a token whose variable or file is empty accepts nothing.
    tokens = {h.name: h.token.resolve() for h in config.heartbeats if h.token is not None}

    def _denied() -> JSONResponse:
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)

    @router.post("/heartbeats/{name}")
    async def beat(request: Request, name: str) -> Response:
        given = _bearer(request)
        expected = tokens.get(name)
        # Compare even for an unknown name, so timing does not tell names apart.
        ok = hmac.compare_digest((given or "").encode(), (expected or "\0").encode())
        if not (ok and given and expected):
            return _denied()
        now = daemon.clock.now()

        def run() -> list[int]:
            with transaction(daemon.factory) as session:
                return record_beats(
                    session, [name], "http", config, daemon.paging(session, now),
                    daemon.policies, now,
                )  # fmt: skip

        try:
            resolved = await run_in_threadpool(run)
        except STORE_ERRORS:
            return JSONResponse({"error": "store unavailable, retry later"}, status_code=503)
        if resolved:
            daemon.runner.wake()
        heartbeat = config.heartbeat(name)
        assert heartbeat is not None
        due = heartbeats.deadline(heartbeat, now, now, daemon.engine.started_at)
        return JSONResponse(
            {"status": "ok", "heartbeat": name, "due_at": due.isoformat(), "resolved": resolved}
        )

    @router.get("/api/v1/heartbeats")
    def listing(request: Request) -> Response:
        if not authorized(request):
            return _denied()
        now = daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                rows = list_heartbeats(session, config, now, daemon.engine.started_at)
        except STORE_ERRORS:
            return JSONResponse({"error": "store unavailable, retry later"}, status_code=503)
        return JSONResponse(rows)

    return router
