"""`/api/v1/...`: the API the CLI uses with `--server`, one endpoint per CLI data verb.

Every write goes through the service layer with the daemon's services (its clock, its
channels, a wake-up for its engine); reads go through `escalator.read`. The bearer token
is `server.api_token`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from escalator.config.durations import parse_duration
from escalator.daemon import Daemon
from escalator.read import postmortems as postmortem_views
from escalator.read import report, views
from escalator.read.roster import override_rows, schedule_ical, schedule_rows
from escalator.roster.overrides import load_overrides
from escalator.services import alerts as alert_services
from escalator.services import incidents as incident_services
from escalator.services import roster as roster_services
from escalator.services.alerts import Outcome, Selection
from escalator.services.context import Actor
from escalator.store.db import transaction
from escalator.web.auth import ApiError, bearer

ICAL_TYPE = "text/calendar; charset=utf-8"
By = Field(min_length=1, max_length=200, description="The person acting (a configured id).")


class AckRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ids: list[int] = Field(default_factory=list)
    all: bool = False
    by: str = By
    until: datetime | None = Field(default=None, description="Snooze: the ack ends then.")
    for_: str | None = Field(
        default=None, alias="for", description="Snooze: the ack ends this long after now (30m)."
    )


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ids: list[int] = Field(min_length=1)
    by: str = By
    for_: str = Field(alias="for", description="How long (30m, 2h).")


class ActRequest(BaseModel):
    ids: list[int] = Field(min_length=1)
    by: str = By


class OverrideRequest(BaseModel):
    rotation: str = Field(min_length=1, max_length=200)
    person: str = Field(min_length=1, max_length=200)
    start: datetime | None = Field(default=None, description="Default: now (daemon's clock).")
    end: datetime
    by: str = By


class UpdateRequest(BaseModel):
    message: str = Field(min_length=1, max_length=4000)
    status: Literal["IN PROGRESS", "MONITORING", "RESOLVED"] = "IN PROGRESS"
    eta: str | None = Field(default=None, max_length=200)
    by: str = By


class PostmortemRequest(BaseModel):
    url: str = Field(min_length=8, max_length=2000)
    by: str = By


def _duration(value: str, name: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ApiError(422, f"{name}: {exc}") from exc


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _outcomes(outcomes: list[Outcome]) -> JSONResponse:
    return JSONResponse([o.__dict__ for o in outcomes])


def api_router(daemon: Daemon) -> APIRouter:
    router = APIRouter(prefix="/api/v1", dependencies=[Depends(bearer(daemon.api_token))])
    config = daemon.config
    services = daemon.services

    def api(by: str) -> Actor:
        return Actor(by, "api")

    # Alerts -------------------------------------------------------------------------------

    @router.get("/alerts")
    def list_alerts(all: bool = False) -> Response:
        with transaction(daemon.factory) as session:
            return JSONResponse(views.list_alerts(session, include_resolved=all))

    @router.get("/alerts/{alert_id}")
    def show_alert(alert_id: int) -> Response:
        with transaction(daemon.factory) as session:
            shown = views.show_alert(session, alert_id)
        if shown is None:
            raise ApiError(404, f"no alert {alert_id}")
        return JSONResponse(shown)

    @router.post("/alerts/ack")
    def ack(body: AckRequest) -> Response:
        if not body.all and not body.ids:
            raise ApiError(422, "give `ids` or `all: true`")
        for_ = _duration(body.for_, "for") if body.for_ else None
        alerts = Selection.OPEN if body.all else body.ids
        return _outcomes(
            alert_services.acknowledge(
                services, api(body.by), alerts, until=body.until and _aware(body.until), for_=for_
            )
        )

    @router.post("/alerts/snooze")
    def snooze(body: SnoozeRequest) -> Response:
        for_ = _duration(body.for_, "for")
        return _outcomes(alert_services.snooze(services, api(body.by), body.ids, for_))

    @router.post("/alerts/resolve")
    def resolve(body: ActRequest) -> Response:
        return _outcomes(alert_services.resolve(services, api(body.by), body.ids))

    @router.post("/alerts/escalate")
    def escalate(body: ActRequest) -> Response:
        return _outcomes(alert_services.escalate_now(services, api(body.by), body.ids))

    # Roster -------------------------------------------------------------------------------

    @router.get("/oncall")
    def oncall(at: datetime | None = None) -> Response:
        when = _aware(at) if at else daemon.clock.now()
        with transaction(daemon.factory) as session:
            overrides = load_overrides(session, when)
        return JSONResponse(views.oncall(config, when, overrides))

    @router.get("/overrides")
    def list_overrides(all: bool = False) -> Response:
        with transaction(daemon.factory) as session:
            return JSONResponse(override_rows(session, config, daemon.clock.now(), all))

    @router.post("/overrides", status_code=201)
    def add_override(body: OverrideRequest) -> Response:
        created = roster_services.add_override(
            services,
            api(body.by),
            body.rotation,
            body.person,
            _aware(body.end),
            _aware(body.start) if body.start else None,
        )
        return JSONResponse(created, status_code=201)

    @router.delete("/overrides/{override_id}")
    def remove_override(override_id: int, by: str) -> Response:
        return JSONResponse(roster_services.remove_override(services, api(by), override_id))

    @router.get("/schedule")
    def schedule(
        rotation: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        format: Literal["json", "ical"] = "json",
    ) -> Response:
        if rotation is not None and config.rotation(rotation) is None:
            raise ApiError(404, f"no rotation {rotation!r}")
        now = daemon.clock.now()
        begin = _aware(start) if start else now
        until = _aware(end) if end else begin + timedelta(weeks=2)
        if until <= begin:
            raise ApiError(422, "end must be after start")
        with transaction(daemon.factory) as session:
            if format == "ical":
                body = schedule_ical(session, config, rotation, begin, until, now)
                return Response(body, media_type=ICAL_TYPE)
            return JSONResponse(schedule_rows(session, config, rotation, begin, until))

    # Incidents ----------------------------------------------------------------------------

    @router.post("/incidents/{incident_id}/updates", status_code=201)
    def post_update(incident_id: int, body: UpdateRequest) -> Response:
        done = incident_services.post_update(
            services, api(body.by), incident_id, body.message, body.status, body.eta
        )
        return JSONResponse(jsonable_encoder(done.__dict__), status_code=201)

    @router.post("/incidents/{incident_id}/postmortem")
    def link_postmortem(incident_id: int, body: PostmortemRequest) -> Response:
        done = incident_services.link_postmortem(services, api(body.by), incident_id, body.url)
        return JSONResponse(jsonable_encoder(done.__dict__))

    @router.get("/postmortems")
    def postmortems(overdue: bool = False) -> Response:
        with transaction(daemon.factory) as session:
            rows = postmortem_views.postmortems(session, daemon.clock.now(), overdue)
        return JSONResponse(jsonable_encoder(rows))

    @router.get("/report")
    def report_(since: str = "30d") -> Response:
        now = daemon.clock.now()
        try:
            start = report.parse_since(since, now)
        except ValueError as exc:
            raise ApiError(422, f"since: {exc}") from exc
        with transaction(daemon.factory) as session:
            records, pages = report.load(session, start, now)
        return JSONResponse(jsonable_encoder(report.build(records, pages, start, now)))

    return router


