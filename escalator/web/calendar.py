"""`GET /api/v1/calendar/{rotation}.ics`: a rotation's shifts as an iCalendar feed.

Calendar apps subscribe to the URL and re-fetch it; the feed covers a week back and
`weeks` ahead (default 8), overrides from the database included. Access needs the API
bearer token, checked by the app's own `_authorized` (passed in as `authorized` so this
module does not import the app that includes it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from escalator.daemon import Daemon
from escalator.roster.overrides import load_overrides
from escalator.roster.schedule import rotation_shifts, to_ical
from escalator.store.db import STORE_ERRORS, transaction
from escalator.web.openapi import ERRORS

ICAL_TYPE = "text/calendar; charset=utf-8"


def calendar_router(daemon: Daemon, authorized: Callable[[Request], bool]) -> APIRouter:
    router = APIRouter(responses=ERRORS(401, 404, 422, 503))

    @router.get("/api/v1/calendar/{rotation_id}.ics")
    async def rotation_calendar(request: Request, rotation_id: str, weeks: int = 8) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        rotation = daemon.config.rotation(rotation_id)
        if rotation is None:
            return JSONResponse({"error": f"no rotation {rotation_id!r}"}, status_code=404)
        if not 1 <= weeks <= 104:
            return JSONResponse({"error": "weeks must be between 1 and 104"}, status_code=422)
        now = daemon.clock.now()
        start, end = now - timedelta(weeks=1), now + timedelta(weeks=weeks)

        def build() -> bytes:
            with transaction(daemon.factory) as session:
                overrides = load_overrides(session, start)
            shifts = rotation_shifts(rotation, start, end, overrides)
            return to_ical(daemon.config, [(rotation, shifts)], now)

        try:
            body = await run_in_threadpool(build)
        except STORE_ERRORS:
            return JSONResponse({"error": "store unavailable, retry later"}, status_code=503)
        return Response(
            body,
            media_type=ICAL_TYPE,
            headers={"Content-Disposition": f'inline; filename="{rotation.id}.ics"'},
        )

    return router
