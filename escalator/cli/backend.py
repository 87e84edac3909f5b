"""Where the CLI's data verbs go: the database (`Local`) or a daemon's HTTP API (`Remote`).

Both have the same methods and return the same JSON-ready values, so every verb prints
the same thing either way. `Local` calls the service layer with the database's clock
(never the laptop's); `Remote` calls the API, whose handlers call the same services with
the daemon's clock. The actor rule is the service layer's in both cases: with a
configuration, the person must be one it names.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import click
from fastapi.encoders import jsonable_encoder
from sqlalchemy import Engine

from escalator.config import Config
from escalator.notify.channels import configured_methods
from escalator.read import postmortems as postmortem_views
from escalator.read import report, views
from escalator.read.roster import override_rows
from escalator.roster.overrides import load_overrides
from escalator.roster.schedule import rotation_shifts, shift_rows, to_ical
from escalator.services import alerts as alert_services
from escalator.services import incidents as incident_services
from escalator.services import roster as roster_services
from escalator.services.alerts import Alerts, Selection
from escalator.services.context import Actor, ServiceContext, ServiceError
from escalator.store.clock import database_now
from escalator.store.db import transaction

if TYPE_CHECKING:
    from escalator.cli.support import Context

Rows = list[dict[str, Any]]


class Backend(Protocol):
    """The CLI's data verbs; `ids=None` means every triggered alert."""

    def __enter__(self) -> Backend: ...
    def __exit__(self, *exc: object) -> None: ...
    def list_alerts(self, include_resolved: bool) -> Rows: ...
    def show_alert(self, alert_id: int) -> dict[str, Any] | None: ...
    def acknowledge(self, who: str, ids: list[int] | None, for_: str | None) -> Rows: ...
    def snooze(self, who: str, ids: list[int], for_: str) -> Rows: ...
    def resolve(self, who: str, ids: list[int]) -> Rows: ...
    def escalate(self, who: str, ids: list[int]) -> Rows: ...
    def oncall(self, at: datetime | None) -> Rows: ...
    def overrides(self, include_past: bool) -> Rows: ...
    def add_override(
        self, who: str, rotation: str, person: str, start: datetime | None, end: datetime
    ) -> dict[str, Any]: ...
    def remove_override(self, who: str, override_id: int) -> dict[str, Any]: ...
    def schedule(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> Rows: ...
    def schedule_ical(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> bytes: ...
    def post_update(
        self, who: str, incident_id: int, message: str, status: str, eta: str | None
    ) -> dict[str, Any]: ...
    def link_postmortem(self, who: str, incident_id: int, url: str) -> dict[str, Any]: ...
    def postmortems(self, overdue_only: bool) -> Rows: ...
    def report(self, since: str) -> dict[str, Any]: ...


def _alerts(ids: list[int] | None) -> Alerts:
    return Selection.OPEN if ids is None else ids


def _duration(value: str) -> timedelta:
    from escalator.config.durations import parse_duration

    return parse_duration(value)


class Local:
    """The database at `--database-url`, opened on first use and closed on exit."""

    VIA = "cli"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._engine: Engine | None = None
        self._services: ServiceContext | None = None

    def __enter__(self) -> Local:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def services(self) -> ServiceContext:
        if self._services is None:
            engine, factory = self.ctx.local()
            self._engine = engine
            config = self.ctx.config(required=False)
            methods = configured_methods(config) if config is not None else frozenset()
            self._services = ServiceContext(factory, config, methods)  # database clock
        return self._services

    def _config(self) -> Config:
        config = self.ctx.config()
        assert config is not None
        return config

    def _actor(self, who: str) -> Actor:
        return Actor(who, self.VIA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc

    def _outcomes(self, fn: Any, *args: Any, **kwargs: Any) -> Rows:
        return [o.__dict__ for o in self._call(fn, *args, **kwargs)]

    def _now(self) -> datetime:
        with transaction(self.services.factory) as session:
            return database_now(session)

    # Alerts -------------------------------------------------------------------------------

    def list_alerts(self, include_resolved: bool) -> Rows:
        with transaction(self.services.factory) as session:
            return views.list_alerts(session, include_resolved=include_resolved)

    def show_alert(self, alert_id: int) -> dict[str, Any] | None:
        with transaction(self.services.factory) as session:
            return views.show_alert(session, alert_id)

    def acknowledge(self, who: str, ids: list[int] | None, for_: str | None) -> Rows:
        duration = _duration(for_) if for_ else None
        return self._outcomes(
            alert_services.acknowledge,
            self.services,
            self._actor(who),
            _alerts(ids),
            for_=duration,
        )

    def snooze(self, who: str, ids: list[int], for_: str) -> Rows:
        return self._outcomes(
            alert_services.snooze, self.services, self._actor(who), ids, _duration(for_)
        )

    def resolve(self, who: str, ids: list[int]) -> Rows:
        return self._outcomes(alert_services.resolve, self.services, self._actor(who), ids)

    def escalate(self, who: str, ids: list[int]) -> Rows:
        return self._outcomes(alert_services.escalate_now, self.services, self._actor(who), ids)

    # Roster -------------------------------------------------------------------------------

    def _stored_overrides(self, since: datetime) -> list[Any]:
        """Overrides from the database; [] with a warning when it cannot be read, because
        the roster from the config alone still helps."""
        try:
            with transaction(self.services.factory) as session:
                return load_overrides(session, since)
        except click.ClickException as exc:
            click.echo(f"warning: overrides from the database not read ({exc.message})", err=True)
            return []

    def _when(self, at: datetime | None) -> datetime:
        if at is not None:
            return at
        try:
            return self._now()
        except click.ClickException:
            from datetime import UTC

            return datetime.now(UTC)  # no database: a read of the config alone

    def oncall(self, at: datetime | None) -> Rows:
        when = self._when(at)
        return views.oncall(self._config(), when, self._stored_overrides(when))

    def overrides(self, include_past: bool) -> Rows:
        with transaction(self.services.factory) as session:
            now = database_now(session)
            return override_rows(session, self._config(), now, include_past)

    def add_override(
        self, who: str, rotation: str, person: str, start: datetime | None, end: datetime
    ) -> dict[str, Any]:
        self._config()
        return self._call(
            roster_services.add_override,
            self.services,
            self._actor(who),
            rotation,
            person,
            end,
            start,
        )

    def remove_override(self, who: str, override_id: int) -> dict[str, Any]:
        return self._call(
            roster_services.remove_override, self.services, self._actor(who), override_id
        )

    def _shifts(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> tuple[Config, list[Any], datetime]:
        config = self._config()
        now = self._when(None)
        begin = start or now
        until = end or begin + timedelta(weeks=2)
        overrides = self._stored_overrides(begin)
        chosen = [r for r in config.rotations if rotation is None or r.id == rotation]
        return config, [(r, rotation_shifts(r, begin, until, overrides)) for r in chosen], now

    def schedule(self, rotation: str | None, start: datetime | None, end: datetime | None) -> Rows:
        config, shifts, _ = self._shifts(rotation, start, end)
        return [row for r, s in shifts for row in shift_rows(config, r, s)]

    def schedule_ical(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> bytes:
        config, shifts, now = self._shifts(rotation, start, end)
        return to_ical(config, shifts, now)

    # Incidents ----------------------------------------------------------------------------

    def post_update(
        self, who: str, incident_id: int, message: str, status: str, eta: str | None
    ) -> dict[str, Any]:
        done = self._call(
            incident_services.post_update,
            self.services,
            self._actor(who),
            incident_id,
            message,
            status,
            eta,
        )
        return jsonable_encoder(done.__dict__)

    def link_postmortem(self, who: str, incident_id: int, url: str) -> dict[str, Any]:
        done = self._call(
            incident_services.link_postmortem, self.services, self._actor(who), incident_id, url
        )
        return jsonable_encoder(done.__dict__)

    def postmortems(self, overdue_only: bool) -> Rows:
        with transaction(self.services.factory) as session:
            rows = postmortem_views.postmortems(session, database_now(session), overdue_only)
        return jsonable_encoder(rows)

    def report(self, since: str) -> dict[str, Any]:
        with transaction(self.services.factory) as session:
            now = database_now(session)
            try:
                start = report.parse_since(since, now)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--since") from exc
            records, pages = report.load(session, start, now)
        return jsonable_encoder(report.build(records, pages, start, now))


class Remote:
    """A daemon's `/api/v1` at `--server`, with `--token`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.ctx.http("GET", path, params=clean)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self.ctx.http("POST", path, json={k: v for k, v in body.items() if v is not None})

    @staticmethod
    def _iso(at: datetime | None) -> str | None:
        return at.isoformat() if at is not None else None

    def list_alerts(self, include_resolved: bool) -> Rows:
        return self._get("/api/v1/alerts", all=str(include_resolved).lower())

    def show_alert(self, alert_id: int) -> dict[str, Any] | None:
        return self.ctx.http("GET", f"/api/v1/alerts/{alert_id}")

    def acknowledge(self, who: str, ids: list[int] | None, for_: str | None) -> Rows:
        body = {"ids": ids or [], "all": ids is None, "by": who, "for": for_}
        return self._post("/api/v1/alerts/ack", body)

    def snooze(self, who: str, ids: list[int], for_: str) -> Rows:
        return self._post("/api/v1/alerts/snooze", {"ids": ids, "by": who, "for": for_})

    def resolve(self, who: str, ids: list[int]) -> Rows:
        return self._post("/api/v1/alerts/resolve", {"ids": ids, "by": who})

    def escalate(self, who: str, ids: list[int]) -> Rows:
        return self._post("/api/v1/alerts/escalate", {"ids": ids, "by": who})

    def oncall(self, at: datetime | None) -> Rows:
        return self._get("/api/v1/oncall", at=self._iso(at))

    def overrides(self, include_past: bool) -> Rows:
        return self._get("/api/v1/overrides", all=str(include_past).lower())

    def add_override(
        self, who: str, rotation: str, person: str, start: datetime | None, end: datetime
    ) -> dict[str, Any]:
        body = {
            "rotation": rotation,
            "person": person,
            "start": self._iso(start),
            "end": self._iso(end),
            "by": who,
        }
        return self._post("/api/v1/overrides", body)

    def remove_override(self, who: str, override_id: int) -> dict[str, Any]:
        return self.ctx.http("DELETE", f"/api/v1/overrides/{override_id}", params={"by": who})

    def schedule(self, rotation: str | None, start: datetime | None, end: datetime | None) -> Rows:
        return self._get(
            "/api/v1/schedule", rotation=rotation, start=self._iso(start), end=self._iso(end)
        )

    def schedule_ical(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> bytes:
        params = {"rotation": rotation, "start": self._iso(start), "end": self._iso(end)}
        clean = {k: v for k, v in params.items() if v is not None}
        clean["format"] = "ical"
        return self.ctx.http("GET", "/api/v1/schedule", raw=True, params=clean)

    def post_update(
        self, who: str, incident_id: int, message: str, status: str, eta: str | None
    ) -> dict[str, Any]:
        body = {"message": message, "status": status, "eta": eta, "by": who}
        return self._post(f"/api/v1/incidents/{incident_id}/updates", body)

    def link_postmortem(self, who: str, incident_id: int, url: str) -> dict[str, Any]:
        return self._post(f"/api/v1/incidents/{incident_id}/postmortem", {"url": url, "by": who})

    def postmortems(self, overdue_only: bool) -> Rows:
        return self._get("/api/v1/postmortems", overdue=str(overdue_only).lower())

    def report(self, since: str) -> dict[str, Any]:
        return self._get("/api/v1/report", since=since)
