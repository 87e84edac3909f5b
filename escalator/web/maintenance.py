"""`/api/v1/maintenance`: list, add and end maintenance windows over HTTP (what
`escalator maintenance ... --server URL` calls), behind the API bearer token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from escalator.config import Duration, LabelMatcher
from escalator.daemon import Daemon
from escalator.maintenance.store import add_window, end_window, list_windows, window_of
from escalator.store.db import transaction


class AddWindow(BaseModel):
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    duration: Duration | None = Field(default=None, alias="for")
    until: datetime | None = None
    reason: str = Field(min_length=1, max_length=2000)
    by: str = Field(min_length=1, max_length=200)
    include_open: bool = False


class EndWindow(BaseModel):
    by: str = Field(min_length=1, max_length=200)


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code)


def maintenance_router(daemon: Daemon, authorized: Callable[[Request], bool]) -> APIRouter:
    router = APIRouter()
    config = daemon.config

    @router.get("/api/v1/maintenance")
    def listing(request: Request, all: bool = False) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong bearer token")
        now = daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                return JSONResponse(list_windows(session, config, now, include_past=all))
        except DBAPIError:
            return _error(503, "store unavailable, retry later")

    @router.post("/api/v1/maintenance", status_code=201)
    async def add(request: Request, body: AddWindow) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong bearer token")
        if config.person(body.by) is None:
            return _error(422, f"unknown person {body.by!r}")
        if (body.duration is None) == (body.until is None):
            return _error(422, "give exactly one of `for` (a duration) or `until` (a time)")
        try:
            matcher = LabelMatcher(match=body.match, match_re=body.match_re)
        except ValidationError as exc:
            return _error(422, str(exc.errors()[0]["msg"]))
        now = daemon.clock.now()
        if body.until is not None and body.until.tzinfo is None:
            return _error(422, "`until` needs a UTC offset")
        ends = now + body.duration if body.duration is not None else body.until
        assert ends is not None
        if ends <= now or ends - now > timedelta(days=31):
            return _error(422, "the window must end in the future, within 31 days")

        def run() -> dict[str, object]:
            with transaction(daemon.factory) as session:
                added = add_window(
                    session, matcher, now, ends, body.reason, body.by, body.include_open,
                    daemon.policies, now,
                )  # fmt: skip
                return {"id": added.window.key, "held": added.held,
                        "starts_at": now.isoformat(), "ends_at": ends.isoformat()}  # fmt: skip

        try:
            created = await run_in_threadpool(run)
        except ValueError as exc:
            return _error(422, str(exc))
        except DBAPIError:
            return _error(503, "store unavailable, retry later")
        return JSONResponse(created, status_code=201)

    @router.post("/api/v1/maintenance/{window_id}/end")
    async def end(request: Request, window_id: int, body: EndWindow) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong bearer token")
        if config.person(body.by) is None:
            return _error(422, f"unknown person {body.by!r}")
        now = daemon.clock.now()

        def run() -> dict[str, object] | None:
            with transaction(daemon.factory) as session:
                row = end_window(session, window_id, body.by, now)
                if row is None:
                    return None
                window = window_of(row)
                return {"id": window.key, "ends_at": window.ends_at.isoformat()}

        try:
            ended = await run_in_threadpool(run)
        except DBAPIError:
            return _error(503, "store unavailable, retry later")
        if ended is None:
            return _error(404, f"no maintenance window {window_id}")
        daemon.runner.wake()  # release what it held on this tick, not the next
        return JSONResponse(ended)

    return router
