"""The console's routes: pages (GET, read only) and actions (POST forms, CSRF-checked).

Every page is plain server-rendered HTML that works without JavaScript; app.js only adds
a confirmation before the drastic buttons, the alert list's live refresh (it re-fetches
the list fragment) and a copy button. Each action is one call into the service layer
(`escalator.services`, the same calls the CLI and the API make), then a
redirect back with a one-line account of what happened (post/redirect/get, so a reload
never repeats an action).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escalator.config.durations import parse_duration
from escalator.daemon import Daemon
from escalator.services import alerts as alert_services
from escalator.services import incidents as incident_services
from escalator.services import roster as roster_services
from escalator.services.context import Actor, ServiceError
from escalator.store.db import STORE_ERRORS, transaction
from escalator.web.ui import logins, read
from escalator.web.ui.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Denied,
    Guard,
    NeedsLogin,
    Viewer,
)

log = logging.getLogger("escalator.web.ui")

FLASH_COOKIE = "escalator_flash"
MAX_FORM_BYTES = 64 * 1024
# No inline script or style anywhere: the chart is SVG drawn with attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
REPORT_TTL = 60.0  # seconds
SNOOZE_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h")
NAV = (
    ("alerts", "/ui/", "Alerts"),
    ("oncall", "/ui/oncall", "On call"),
    ("incidents", "/ui/incidents", "Incidents"),
    ("report", "/ui/report", "Report"),
)


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("escalator.web.ui") / "static"
    out = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in STATIC_TYPES:
            out[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    return out


def _safe_back(value: str | None, default: str = "/ui/") -> str:
    """Only a path inside the console: never an open redirect."""
    if value and value.startswith("/ui/") and "//" not in value and "\\" not in value:
        return value
    return default


def _encode_flash(ok: bool, text: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"ok": ok, "text": text[:500]}).encode()).decode()


def _decode_flash(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value.encode()))
        return {"ok": bool(data["ok"]), "text": str(data["text"])}
    except (ValueError, KeyError, TypeError):
        return None


def _outcomes_text(outcomes: list[Any]) -> str:
    if not outcomes:
        return "no alert matched: nothing to do"
    return "; ".join(f"#{o.alert_id}: {o.message}" for o in outcomes[:20]) + (
        f" (and {len(outcomes) - 20} more)" if len(outcomes) > 20 else ""
    )


class ConsoleHeaders:
    """SECURITY_HEADERS on the console's pages (`/` and `/ui...`); any other request passes
    straight through. Plain ASGI rather than `@app.middleware("http")`: Starlette's
    BaseHTTPMiddleware runs every request, the webhook's too, through a task group and a
    memory stream, which cost 10% of a repeated Alertmanager post."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/ui")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def install_console(app: FastAPI, daemon: Daemon) -> None:
    """Add the console's routes, its security headers and the `/` redirect to `app`."""
    guard = Guard(daemon.config)
    services = daemon.services  # the daemon's clock, channels and engine wake-up
    env = Environment(
        loader=PackageLoader("escalator.web.ui", "templates"),
        autoescape=select_autoescape(default=True),  # labels and annotations come from outside
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    static = _static_files()

    app.add_middleware(ConsoleHeaders)

    # Rendering --------------------------------------------------------------------------

    def page_html(name: str, **ctx: Any) -> str:
        return env.get_template(name).render(nav=NAV, **ctx)

    def error_page(
        request: Request, status: int, message: str, viewer: Viewer | None = None
    ) -> Response:
        html = page_html(
            "error.html",
            title="Error",
            active="",
            viewer=viewer,
            flash=None,
            csrf="",
            status=status,
            message=message,
        )
        return HTMLResponse(html, status_code=status)

    def login_redirect(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/ui/login?" + urlencode({"next": _safe_back(target)}), 303)

    def render(
        request: Request,
        template: str,
        active: str,
        build: Callable[[Session, Viewer, datetime], dict[str, Any] | None],
        fragment: bool = False,
    ) -> Response:
        now = daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                viewer = guard.viewer(request, session, now)
                nonce, new_nonce = guard.csrf_nonce(request)
                csrf = guard.csrf_token(session, nonce, now)
                ctx = build(session, viewer, now)
        except NeedsLogin:
            if fragment:
                return error_page(request, 401, "log in again")
            return login_redirect(request)
        except Denied as exc:
            return error_page(request, exc.status, exc.message)
        except STORE_ERRORS as exc:
            log.error("store unavailable: %s", exc)
            return error_page(request, 503, "the store is unavailable; retry in a moment")
        if ctx is None:
            return error_page(request, 404, "not found", viewer)
        flash = None if fragment else _decode_flash(request.cookies.get(FLASH_COOKIE))
        html = page_html(
            template,
            active=active,
            viewer=viewer,
            csrf=csrf,
            flash=flash,
            now=read.utc(now),
            back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **ctx,
        )
        response = HTMLResponse(html)
        if new_nonce:
            guard.set_cookie(request, response, CSRF_COOKIE, nonce)
        if request.cookies.get(FLASH_COOKIE) and not fragment:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    async def read_form(request: Request) -> dict[str, str] | None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return None
            chunks.append(chunk)
        body = b"".join(chunks).decode("utf-8", errors="replace")
        return dict(parse_qsl(body, keep_blank_values=True))

    async def act(request: Request, handler: Callable[[dict[str, str], Actor], str]) -> Response:
        """Check who and CSRF, run the action, redirect back with what happened."""
        form = await read_form(request)
        if form is None:
            return error_page(request, 413, "form too large")

        def run() -> str | Response:
            now = daemon.clock.now()
            with transaction(daemon.factory) as session:
                viewer = guard.viewer(request, session, now)
                guard.check_post(request, form, session, now)
            if viewer.person is None:
                raise Denied(
                    403,
                    "say who you are first (the box at the top): actions are "
                    "recorded with a person of the roster",
                )
            return handler(form, Actor(viewer.person, "web"))

        try:
            text = await run_in_threadpool(run)
        except NeedsLogin:
            return error_page(request, 401, "not logged in: open /ui/login")
        except Denied as exc:
            return error_page(request, exc.status, exc.message)
        except ServiceError as exc:
            return error_page(request, 422, str(exc))
        except (ValueError, KeyError) as exc:
            return error_page(request, 422, f"bad form: {exc}")
        except STORE_ERRORS as exc:
            log.error("store unavailable: %s", exc)
            return error_page(request, 503, "the store is unavailable; nothing was done")
        assert isinstance(text, str)
        response = RedirectResponse(_safe_back(form.get("back")), status_code=303)
        response.set_cookie(
            FLASH_COOKIE,
            _encode_flash(True, text),
            httponly=True,
            samesite="strict",
            secure=guard.secure_cookies(request),
            path="/",
            max_age=60,
        )
        return response

    # Entry points -------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui", include_in_schema=False)
    def ui_bare() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        found = static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media = found
        return Response(body, media_type=media, headers={"Cache-Control": "public, max-age=300"})

    # Alerts -------------------------------------------------------------------------------

    def alert_filter(request: Request) -> read.AlertFilter:
        q = request.query_params
        state = q.get("state", "open")
        page = q.get("page", "1")
        return read.AlertFilter(
            state=state if state in read.STATES else "open",
            severity=q.get("severity", "")[:50],
            label=q.get("label", "")[:200],
            page=int(page) if page.isdigit() else 1,
        )

    def alerts_ctx(request: Request) -> Callable[[Session, Viewer, datetime], dict[str, Any]]:
        flt = alert_filter(request)

        def build(session: Session, viewer: Viewer, now: datetime) -> dict[str, Any]:
            listed = read.alert_list(daemon, session, flt, now)
            query = urlencode(flt.query(flt.page))
            return {
                **listed,
                "title": "Alerts",
                "mine": read.mine_count(session, viewer.person),
                "snooze_choices": SNOOZE_CHOICES,
                "states": list(read.STATES),
                "fragment_url": "/ui/fragment/alerts" + (f"?{query}" if query else ""),
                "list_back": "/ui/" + (f"?{query}" if query else ""),
            }

        return build

    @app.get("/ui/", include_in_schema=False)
    def alerts_page(request: Request) -> Response:
        return render(request, "alerts.html", "alerts", alerts_ctx(request))

    @app.get("/ui/fragment/alerts", include_in_schema=False)
    def alerts_fragment(request: Request) -> Response:
        return render(request, "_alert_list.html", "alerts", alerts_ctx(request), fragment=True)

    @app.get("/ui/alerts/{alert_id}", include_in_schema=False)
    def alert_detail(request: Request, alert_id: int) -> Response:
        def build(session: Session, viewer: Viewer, now: datetime) -> dict[str, Any] | None:
            shown = read.alert_page(daemon, session, alert_id, now)
            if shown is None:
                return None
            return {
                "title": f"#{alert_id} {shown['alertname']}",
                "alert": shown,
                "snooze_choices": SNOOZE_CHOICES,
            }

        return render(request, "alert.html", "alerts", build)

    def alert_action(verb: str) -> Callable[[Request, int], Any]:
        async def handler(request: Request, alert_id: int) -> Response:
            def do(form: dict[str, str], actor: Actor) -> str:
                if verb == "ack":
                    outcomes = alert_services.acknowledge(services, actor, [alert_id])
                elif verb == "snooze":
                    choice = form.get("for", "")
                    if choice not in SNOOZE_CHOICES:
                        raise ServiceError(f"snooze for one of {', '.join(SNOOZE_CHOICES)}")
                    outcomes = alert_services.snooze(
                        services, actor, [alert_id], parse_duration(choice)
                    )
                elif verb == "escalate":
                    outcomes = alert_services.escalate_now(services, actor, [alert_id])
                else:
                    outcomes = alert_services.resolve(services, actor, [alert_id])
                return _outcomes_text(outcomes)

            return await act(request, do)

        return handler

    for verb in ("ack", "snooze", "escalate", "resolve"):
        app.add_api_route(
            f"/ui/alerts/{{alert_id}}/{verb}",
            alert_action(verb),
            methods=["POST"],
            include_in_schema=False,
        )

    @app.post("/ui/alerts/ack-mine", include_in_schema=False)
    async def ack_mine(request: Request) -> Response:
        def do(form: dict[str, str], actor: Actor) -> str:
            outcomes = alert_services.acknowledge_all(services, actor, paged_only=True)
            return _outcomes_text(outcomes)

        return await act(request, do)

    # On call ------------------------------------------------------------------------------

    @app.get("/ui/oncall", include_in_schema=False)
    def oncall_view(request: Request) -> Response:
        raw = request.query_params.get("week", "0")
        week = int(raw) if raw.lstrip("-").isdigit() and abs(int(raw)) <= 52 else 0

        def build(session: Session, viewer: Viewer, now: datetime) -> dict[str, Any]:
            shown = read.oncall_page(daemon.config, session, now, week)
            default_from = now.replace(second=0, microsecond=0)
            return {
                **shown,
                "title": "On call",
                "api_token_needed": daemon.api_token is not None,
                "default_from": f"{default_from:%Y-%m-%dT%H:%M}",
                "default_until": f"{default_from + timedelta(hours=8):%Y-%m-%dT%H:%M}",
                "base_url": str(request.base_url).rstrip("/"),
            }

        return render(request, "oncall.html", "oncall", build)

    def _local_time(value: str, zone: str) -> datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(zone))
        return parsed

    @app.post("/ui/oncall/overrides", include_in_schema=False)
    async def override_add(request: Request) -> Response:
        def do(form: dict[str, str], actor: Actor) -> str:
            rotation = daemon.config.rotation(form.get("rotation", ""))
            if rotation is None:
                raise ServiceError(f"unknown rotation {form.get('rotation')!r}")
            zone = form.get("zone") or "UTC"
            if zone not in ("UTC", rotation.timezone):
                zone = "UTC"
            try:
                start = _local_time(form["from"], zone) if form.get("from") else None
                end = _local_time(form["until"], zone)
            except (KeyError, ValueError) as exc:
                raise ServiceError("give the times as YYYY-MM-DDTHH:MM") from exc
            person = form.get("person", "")
            created = roster_services.add_override(services, actor, rotation.id, person, end, start)
            row_id = created["id"]
            return (
                f"override #{row_id}: {person} holds {rotation.id} from "
                f"{read.utc(start) if start else 'now'} until {read.utc(end)}"
            )

        return await act(request, do)

    @app.post("/ui/oncall/overrides/{override_id}/remove", include_in_schema=False)
    async def override_remove(request: Request, override_id: int) -> Response:
        def do(form: dict[str, str], actor: Actor) -> str:
            removed = roster_services.remove_override(services, actor, override_id)
            return f"removed override #{override_id} ({removed['person']} on {removed['rotation']})"

        return await act(request, do)

    # Incidents ----------------------------------------------------------------------------

    @app.get("/ui/incidents", include_in_schema=False)
    def incidents_view(request: Request) -> Response:
        def build(session: Session, viewer: Viewer, now: datetime) -> dict[str, Any]:
            return {
                **read.incidents_page(session, now),
                "title": "Incidents",
                "statuses": incident_services.UPDATE_STATUSES,
            }

        return render(request, "incidents.html", "incidents", build)

    @app.post("/ui/incidents/{incident_id}/update", include_in_schema=False)
    async def incident_update(request: Request, incident_id: int) -> Response:
        def do(form: dict[str, str], actor: Actor) -> str:
            message = form.get("message", "")
            if len(message) > 2000:
                raise ServiceError("keep the update under 2000 characters")
            done = incident_services.post_update(
                services,
                actor,
                incident_id,
                message.strip(),
                form.get("status", "IN PROGRESS"),
                form.get("eta") or None,
            )
            return f"status update for #{done.channel} recorded; it is posted on the next tick"

        return await act(request, do)

    @app.post("/ui/incidents/{incident_id}/postmortem", include_in_schema=False)
    async def incident_postmortem(request: Request, incident_id: int) -> Response:
        def do(form: dict[str, str], actor: Actor) -> str:
            url = form.get("url", "").strip()
            done = incident_services.link_postmortem(services, actor, incident_id, url)
            return f"post-mortem linked to #{done.channel}"

        return await act(request, do)

    # Report -------------------------------------------------------------------------------

    # The report reads every alert of the period (thousands): it is kept for a minute, so
    # a team reloading the page does not make the store recompute it each time.
    report_cache: dict[str, tuple[float, dict[str, Any]]] = {}

    @app.get("/ui/report", include_in_schema=False)
    def report_view(request: Request) -> Response:
        period = request.query_params.get("period", "30d")
        period = period if period in read.PERIODS else "30d"

        def build(session: Session, viewer: Viewer, now: datetime) -> dict[str, Any]:
            cached = report_cache.get(period)
            if cached is None or time.monotonic() - cached[0] > REPORT_TTL:
                cached = (time.monotonic(), read.report_page(session, now, period))
                report_cache[period] = cached
            return {
                **cached[1],
                "computed": read.ago(cached[1]["at"], now),
                "title": "Report",
                "periods": list(read.PERIODS),
                "human": read.report.human,
            }

        return render(request, "report.html", "report", build)

    # Login --------------------------------------------------------------------------------

    @app.get("/ui/login", include_in_schema=False)
    def login_form(request: Request) -> Response:
        now = daemon.clock.now()
        try:
            with transaction(daemon.factory) as session:
                nonce, new_nonce = guard.csrf_nonce(request)
                csrf = guard.csrf_token(session, nonce, now)
                local_open = guard.local_open(request, session)
                has_tokens = logins.any_tokens(session)
        except STORE_ERRORS:
            return error_page(request, 503, "the store is unavailable; retry in a moment")
        html = page_html(
            "login.html",
            title="Log in",
            active="",
            viewer=None,
            flash=None,
            csrf=csrf,
            local_open=local_open,
            has_tokens=has_tokens,
            proxied=bool(guard.settings.trusted_proxies),
            people=[(p.id, p.display) for p in daemon.config.people],
            next=_safe_back(request.query_params.get("next")),
        )
        response = HTMLResponse(html)
        if new_nonce:
            guard.set_cookie(request, response, CSRF_COOKIE, nonce)
        return response

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            return error_page(request, 413, "form too large")

        def run() -> str:
            now = daemon.clock.now()
            person = form.get("person", "").strip()
            with transaction(daemon.factory) as session:
                guard.check_post(request, form, session, now)
                if daemon.config.person(person) is None:
                    raise Denied(401, "unknown person or wrong token")
                if guard.local_open(request, session) and not form.get("token"):
                    return guard.session_cookie(session, person, "local", now)
                if logins.check_token(session, person, form.get("token", "")) is None:
                    raise Denied(401, "unknown person or wrong token")
                return guard.session_cookie(session, person, "token", now)

        try:
            cookie = await run_in_threadpool(run)
        except Denied as exc:
            return error_page(request, exc.status, exc.message)
        except STORE_ERRORS:
            return error_page(request, 503, "the store is unavailable; retry in a moment")
        response = RedirectResponse(_safe_back(form.get("next")), status_code=303)
        guard.set_cookie(request, response, SESSION_COOKIE, cookie)
        return response

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        form = await read_form(request) or {}

        def run() -> None:
            now = daemon.clock.now()
            with transaction(daemon.factory) as session:
                guard.check_post(request, form, session, now)

        try:
            await run_in_threadpool(run)
        except Denied as exc:
            return error_page(request, exc.status, exc.message)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
