"""`/api/v1/maintenance`: list, add and end maintenance windows over HTTP (what
`escalator maintenance ... --server URL` calls), behind the API bearer token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from escalator.config import Duration, LabelMatcher
from escalator.daemon import Daemon
from escalator.maintenance.store import list_windows
from escalator.services import maintenance
from escalator.services.context import Actor
from escalator.store.db import transaction
from escalator.web.auth import error
from escalator.web.bodies import MAX_ID, Moment
from escalator.web.openapi import ERRORS


class AddWindow(BaseModel):
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    duration: Duration | None = Field(default=None, alias="for")
    until: Moment | None = None
    reason: str = Field(min_length=1, max_length=2000)
    by: str = Field(min_length=1, max_length=200)
    include_open: bool = False


# A window longer than this is a typo (and `now + duration` must stay a representable date).
_LONGEST = timedelta(days=3660)
WindowId = Annotated[int, Path(ge=1, le=MAX_ID)]


class EndWindow(BaseModel):
    by: str = Field(min_length=1, max_length=200)


def maintenance_router(daemon: Daemon, authorized: Callable[[Request], bool]) -> APIRouter:
    router = APIRouter(responses=ERRORS(401, 404, 422, 503))
    config = daemon.config

    @router.get("/api/v1/maintenance")
    def listing(request: Request, all: bool = False) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        now = daemon.clock.now()
        # A store error, NotFound or another ServiceError is answered 503 / 404 / 422 by
        # the app's handlers (web/auth.install_error_handlers), like every API route.
        with transaction(daemon.factory) as session:
            return JSONResponse(list_windows(session, config, now, include_past=all))

    @router.post("/api/v1/maintenance", status_code=201)
    async def add(request: Request, body: AddWindow) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        if body.duration is not None and body.duration > _LONGEST:
            return error(422, f"for: at most {_LONGEST.days} days")
        try:
            matcher = LabelMatcher(match=body.match, match_re=body.match_re)
        except ValidationError as exc:
            return error(422, str(exc.errors()[0]["msg"]))
        actor = Actor(body.by, "api")

        def run() -> dict[str, object]:
            added = maintenance.add(
                daemon.services, actor, matcher, body.reason, for_=body.duration,
                until=body.until, include_open=body.include_open,
            )  # fmt: skip
            return added.as_dict()

        return JSONResponse(await run_in_threadpool(run), status_code=201)

    @router.post("/api/v1/maintenance/{window_id:int}/end")
    async def end(request: Request, window_id: WindowId, body: EndWindow) -> Response:
        if not authorized(request):
            return error(401, "missing or wrong bearer token")
        actor = Actor(body.by, "api")
        ended = await run_in_threadpool(maintenance.end, daemon.services, actor, window_id)
        return JSONResponse(ended)

    return router
