"""Where the CLI's data verbs go: the database (`Local`) or a daemon's HTTP API (`Remote`).

Both have the same methods and return the same JSON-ready values, so every verb prints
the same thing either way. `Local` calls the service layer with the database's clock
(never the laptop's); `Remote` calls the API, whose handlers call the same services with
the daemon's clock. The actor rule is the service layer's in both cases
(services/actors.py).

Imports of the database layer, the configuration model and the read models happen inside
the methods that need them: a verb pays only for what it reads (bench/cli_startup.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import click

from escalator.read.times import json_ready, rfc3339

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from escalator.cli.support import Context
    from escalator.config import Config
    from escalator.roster.oncall import Override
    from escalator.services.alerts import Alerts
    from escalator.services.context import Actor, ServiceContext

Rows = list[dict[str, Any]]


class Backend(Protocol):
    """The CLI's data verbs; `ids=None` means every triggered alert."""

    def __enter__(self) -> Backend: ...
    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None: ...
    def list_alerts(
        self, include_resolved: bool, limit: int | None, offset: int = 0
    ) -> tuple[Rows, int]: ...
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
    def heartbeats(self) -> Rows: ...
    def maintenance_windows(self, include_past: bool) -> Rows: ...
    def add_maintenance(
        self,
        who: str,
        match: dict[str, str],
        match_re: dict[str, str],
        reason: str,
        for_: str | None,
        until: datetime | None,
        include_open: bool,
    ) -> dict[str, Any]: ...
    def end_maintenance(self, who: str, window_id: int) -> dict[str, Any]: ...


def _alerts(ids: list[int] | None) -> Alerts:
    from escalator.services.alerts import Selection

    return Selection.OPEN if ids is None else ids


def _duration(value: str) -> timedelta:
    from escalator.config.durations import parse_duration

    return parse_duration(value)


def _plain(value: Any) -> Any:
    """A service's dataclass (or rows holding datetimes) as JSON-ready values."""
    if hasattr(value, "__dataclass_fields__"):
        value = dict(value.__dict__)
    return json_ready(value)


class Local:
    """The database at `--database-url`, opened on first use and closed on exit."""

    VIA = "cli"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
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
        self._engine = self._factory = self._services = None

    @property
    def factory(self) -> sessionmaker[Session]:
        """Sessions on the database; reads need nothing else (no configuration)."""
        if self._factory is None:
            self._engine, self._factory = self.ctx.local()
        return self._factory

    @property
    def services(self) -> ServiceContext:
        if self._services is None:
            from escalator.services.context import ServiceContext

            factory = self.factory
            config = self.ctx.config(required=False)
            methods: frozenset[str] = frozenset()
            if config is not None:
                from escalator.notify.channels import configured_methods

                methods = configured_methods(config)
            self._services = ServiceContext(factory, config, methods)  # database clock
        return self._services

    def _config(self) -> Config:
        config = self.ctx.config()
        assert config is not None
        return config

    def _actor(self, who: str) -> Actor:
        from escalator.services.context import Actor

        return Actor(who, self.VIA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from escalator.services.context import ServiceError

        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc

    def _outcomes(self, fn: Any, *args: Any, **kwargs: Any) -> Rows:
        return [o.__dict__ for o in self._call(fn, *args, **kwargs)]

    def _read(self) -> Any:
        from escalator.store.db import transaction

        return transaction(self.factory)

    def _now(self) -> datetime:
        from escalator.store.clock import database_now

        with self._read() as session:
            return database_now(session)

    # Alerts -------------------------------------------------------------------------------

    def list_alerts(
        self, include_resolved: bool, limit: int | None, offset: int = 0
    ) -> tuple[Rows, int]:
        from escalator.read import views

        with self._read() as session:
            rows = views.list_alerts(session, include_resolved, limit, offset)
            total = (
                len(rows) + offset
                if limit is None or len(rows) < limit
                else views.count_alerts(session, include_resolved)
            )
        return rows, total

    def show_alert(self, alert_id: int) -> dict[str, Any] | None:
        from escalator.read import views

        with self._read() as session:
            return views.show_alert(session, alert_id)

    def acknowledge(self, who: str, ids: list[int] | None, for_: str | None) -> Rows:
        from escalator.services import alerts

        duration = _duration(for_) if for_ else None
        return self._outcomes(
            alerts.acknowledge, self.services, self._actor(who), _alerts(ids), for_=duration
        )

    def snooze(self, who: str, ids: list[int], for_: str) -> Rows:
        from escalator.services import alerts

        return self._outcomes(
            alerts.snooze, self.services, self._actor(who), ids, _duration(for_)
        )

    def resolve(self, who: str, ids: list[int]) -> Rows:
        from escalator.services import alerts

        return self._outcomes(alerts.resolve, self.services, self._actor(who), ids)

    def escalate(self, who: str, ids: list[int]) -> Rows:
        from escalator.services import alerts

        return self._outcomes(alerts.escalate_now, self.services, self._actor(who), ids)

    # Roster -------------------------------------------------------------------------------

    def _stored_overrides(self, since: datetime) -> list[Override]:
        """Overrides from the database; [] with a warning when it cannot be read, because
        the roster from the config alone still helps."""
        from escalator.roster.overrides import load_overrides

        try:
            with self._read() as session:
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
            return datetime.now(UTC)  # no database: a read of the config alone

    def oncall(self, at: datetime | None) -> Rows:
        from escalator.read import views

        when = self._when(at)
        return views.oncall(self._config(), when, self._stored_overrides(when))

    def overrides(self, include_past: bool) -> Rows:
        from escalator.read.roster import override_rows
        from escalator.store.clock import database_now

        with self._read() as session:
            now = database_now(session)
            return override_rows(session, self._config(), now, include_past)

    def add_override(
        self, who: str, rotation: str, person: str, start: datetime | None, end: datetime
    ) -> dict[str, Any]:
        from escalator.services import roster

        self._config()
        created = self._call(
            roster.add_override, self.services, self._actor(who), rotation, person, end, start
        )
        return _plain(created)

    def remove_override(self, who: str, override_id: int) -> dict[str, Any]:
        from escalator.services import roster

        return self._call(roster.remove_override, self.services, self._actor(who), override_id)

    def _shifts(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> tuple[Config, list[Any], datetime]:
        from escalator.roster.schedule import rotation_shifts

        config = self._config()
        now = self._when(None)
        begin = start or now
        until = end or begin + timedelta(weeks=2)
        overrides = self._stored_overrides(begin)
        chosen = [r for r in config.rotations if rotation is None or r.id == rotation]
        return config, [(r, rotation_shifts(r, begin, until, overrides)) for r in chosen], now

    def schedule(self, rotation: str | None, start: datetime | None, end: datetime | None) -> Rows:
        from escalator.roster.schedule import shift_rows

        config, shifts, _ = self._shifts(rotation, start, end)
        return _plain([row for r, s in shifts for row in shift_rows(config, r, s)])

    def schedule_ical(
        self, rotation: str | None, start: datetime | None, end: datetime | None
    ) -> bytes:
        from escalator.roster.schedule import to_ical

        config, shifts, now = self._shifts(rotation, start, end)
        return to_ical(config, shifts, now)

    # Incidents ----------------------------------------------------------------------------

    def post_update(
        self, who: str, incident_id: int, message: str, status: str, eta: str | None
    ) -> dict[str, Any]:
        from escalator.services import incidents

        done = self._call(
            incidents.post_update,
            self.services,
            self._actor(who),
            incident_id,
            message,
            status,
            eta,
        )
        return _plain(done)

    def link_postmortem(self, who: str, incident_id: int, url: str) -> dict[str, Any]:
        from escalator.services import incidents

        done = self._call(
            incidents.link_postmortem, self.services, self._actor(who), incident_id, url
        )
        return _plain(done)

    def postmortems(self, overdue_only: bool) -> Rows:
        from escalator.read import postmortems
        from escalator.store.clock import database_now

        with self._read() as session:
            rows = postmortems.postmortems(session, database_now(session), overdue_only)
        return _plain(rows)

    def report(self, since: str) -> dict[str, Any]:
        from fastapi.encoders import jsonable_encoder

        from escalator.read import report
        from escalator.store.clock import database_now

        with self._read() as session:
            now = database_now(session)
            try:
                start = report.parse_since(since, now)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--since") from exc
            records, pages = report.load(session, start, now)
        return json_ready(jsonable_encoder(report.build(records, pages, start, now)))

    # Heartbeats and maintenance -----------------------------------------------------------

    def heartbeats(self) -> Rows:
        from escalator.ingest.heartbeat_store import list_heartbeats
        from escalator.store.clock import database_now

        config = self._config()
        with self._read() as session:
            return _plain(list_heartbeats(session, config, database_now(session)))

    def maintenance_windows(self, include_past: bool) -> Rows:
        from escalator.maintenance.store import list_windows
        from escalator.store.clock import database_now

        config = self._config()
        with self._read() as session:
            now = database_now(session)
            return _plain(list_windows(session, config, now, include_past=include_past))

    def add_maintenance(
        self,
        who: str,
        match: dict[str, str],
        match_re: dict[str, str],
        reason: str,
        for_: str | None,
        until: datetime | None,
        include_open: bool,
    ) -> dict[str, Any]:
        from pydantic import ValidationError

        from escalator.config import LabelMatcher
        from escalator.services import maintenance

        try:
            matcher = LabelMatcher(match=match, match_re=match_re)
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--match-re") from exc
        added = self._call(
            maintenance.add, self.services, self._actor(who), matcher, reason,
            for_=_duration(for_) if for_ is not None else None, until=until,
            include_open=include_open,
        )  # fmt: skip
        return _plain(added.as_dict())

    def end_maintenance(self, who: str, window_id: int) -> dict[str, Any]:
        from escalator.services import maintenance

        ended = self._call(maintenance.end, self.services, self._actor(who), window_id)
        return _plain(ended)


class Remote:
    """A daemon's `/api/v1` at `--server`, with `--token`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __enter__(self) -> Remote:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        return None

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return json_ready(self.ctx.http("GET", path, params=clean))

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        sent = {k: v for k, v in body.items() if v is not None}
        return json_ready(self.ctx.http("POST", path, json=sent))

    @staticmethod
    def _iso(at: datetime | None) -> str | None:
        return rfc3339(at)

    def list_alerts(
        self, include_resolved: bool, limit: int | None, offset: int = 0
    ) -> tuple[Rows, int]:
        params: dict[str, Any] = {"all": str(include_resolved).lower(), "offset": offset}
        if limit is not None:
            params["limit"] = limit
            response = self.ctx.request("GET", "/api/v1/alerts", params=params)
            rows = response.json()
            return json_ready(rows), int(response.headers.get("X-Total-Count", len(rows)))
        # Every alert: page through the API's pages (it caps each one).
        rows, total = [], 0
        while True:
            params["limit"] = 1000
            response = self.ctx.request("GET", "/api/v1/alerts", params=params)
            page = response.json()
            rows.extend(page)
            total = int(response.headers.get("X-Total-Count", len(rows)))
            params["offset"] = offset + len(rows)
            if not page or len(rows) + offset >= total:
                return json_ready(rows), total

    def show_alert(self, alert_id: int) -> dict[str, Any] | None:
        return json_ready(self.ctx.http("GET", f"/api/v1/alerts/{alert_id}"))

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
        content: bytes = self.ctx.http("GET", "/api/v1/schedule", raw=True, params=clean)
        return content

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

    def heartbeats(self) -> Rows:
        return self._get("/api/v1/heartbeats")

    def maintenance_windows(self, include_past: bool) -> Rows:
        return self._get("/api/v1/maintenance", all=str(include_past).lower())

    def add_maintenance(
        self,
        who: str,
        match: dict[str, str],
        match_re: dict[str, str],
        reason: str,
        for_: str | None,
        until: datetime | None,
        include_open: bool,
    ) -> dict[str, Any]:
        # A duration goes as a duration: the window starts at the daemon's time.
        body: dict[str, Any] = {
            "match": match,
            "match_re": match_re,
            "reason": reason,
            "by": who,
            "include_open": include_open,
        }
        body.update({"for": for_} if for_ is not None else {"until": self._iso(until)})
        return self._post("/api/v1/maintenance", body)

    def end_maintenance(self, who: str, window_id: int) -> dict[str, Any]:
        return self._post(f"/api/v1/maintenance/{window_id}/end", {"by": who})
