"""The edge guard: one ASGI middleware in front of every route, before any body is read.

In order, for every HTTP request:

1. Quick-start mode (a token unset, so loopback clients are trusted without one): a
   loopback client must name this host (IP literal, localhost, a single-label name, the
   public_url's host or `server.allowed_hosts`), so a page on a DNS-rebinding name such as
   rebind.evil.example cannot talk to the daemon through the victim's browser; and a
   cross-site browser request (Sec-Fetch-Site, or an Origin that is not this host) that
   would change something is refused. 403 either way.
2. `Content-Encoding` other than identity: 415 (nothing here inflates bodies).
3. Authentication that does not need the body happens before it is read: the bearer token
   (webhook, /api/v1), the presence of a signature header (Twilio, Slack, whose signatures
   cover the body and are checked by the routes), a bearer at all (heartbeats). 401/403.
4. The body is read here, whole, capped (`server.max_body_bytes` for the webhook and Events
   API v2, `server.max_api_body_bytes` for every other endpoint; a declared Content-Length
   over the cap is refused unread) and within `server.body_timeout`: 413 or 408.
5. JSON bodies for /api/v1 are parsed strictly (`escalator.web.bodies`) and normalised
   (no lone surrogates or NUL) before FastAPI sees them: a bad one is a 400 with the reason.

The routes then read the buffered body (`await request.body()`); none streams on its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escalator.daemon import Daemon
from escalator.web.auth import authorized, is_loopback
from escalator.web.bodies import BadBody, parse_json

WEBHOOK = "/webhooks/alertmanager"
_BIG = (WEBHOOK, "/v2/enqueue", "/v2/change/enqueue")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Names public DNS never answers (RFC 6761): a rebinding attacker cannot own them.
_RESERVED_SUFFIXES = (".localhost", ".test", ".invalid")
_SLACK_WINDOW = 5 * 60


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _host_name(host_header: str) -> str:
    """The host part of a Host header or an Origin's netloc, lower case, without port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class EdgeGuard:
    """See the module docstring; `bind_host` is the address `serve` listens on."""

    def __init__(self, app: ASGIApp, daemon: Daemon, bind_host: str | None = None) -> None:
        self.app = app
        self.daemon = daemon
        server = daemon.config.server
        self.big = server.max_body_bytes
        self.small = server.max_api_body_bytes
        self.timeout = server.body_timeout.total_seconds()
        names = {"localhost", *(h.lower().rstrip(".") for h in server.allowed_hosts)}
        if server.public_url:
            names.add(_host_name(urlsplit(server.public_url).netloc))
        if bind_host:
            names.add(_host_name(bind_host))
        self.allowed_names = names
        twilio = daemon.config.channels.twilio
        self.twilio_ready = bool(
            twilio is not None and twilio.auth_token.resolve() and server.public_url
        )
        self.slack_ready = daemon.slack is not None

    @property
    def quick_start(self) -> bool:
        return self.daemon.webhook_token is None or self.daemon.api_token is None

    # 1. Host and Origin ------------------------------------------------------------------

    def host_allowed(self, host_header: str) -> bool:
        name = _host_name(host_header)
        if not name or _is_ip(name) or name in self.allowed_names:
            return True
        return "." not in name or name.endswith(_RESERVED_SUFFIXES)

    def check_browser(self, request: Request, path: str) -> None:
        if not self.quick_start or not is_loopback(_peer(request)):
            return
        host = request.headers.get("host", "")
        if not self.host_allowed(host):
            raise Refused(
                403,
                f"Host {host!r} is not a name of this daemon (server.allowed_hosts): "
                "refused, as a DNS-rebinding page would be",
            )
        if request.method in _SAFE_METHODS or path.startswith("/ui"):
            return  # the console checks its own form posts (CSRF, Origin, Sec-Fetch-Site)
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refused(403, f"cross-site browser request refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        if origin is not None and (
            origin == "null" or _host_name(urlsplit(origin).netloc) != _host_name(host)
        ):
            raise Refused(403, f"request from another origin ({origin[:100]}) refused")

    # 3. Who is asking, before the body ---------------------------------------------------

    def check_caller(self, request: Request, path: str) -> None:
        if path == WEBHOOK:
            if not authorized(request, self.daemon.webhook_token):
                raise Refused(401, "missing or wrong bearer token")
        elif path.startswith("/api/v1/") or path == "/api/v1":
            if not authorized(request, self.daemon.api_token):
                raise Refused(401, "missing or wrong bearer token")
        elif path.startswith("/heartbeats/"):
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise Refused(401, "missing or wrong bearer token")
        elif path.startswith("/twilio/"):
            if not self.twilio_ready or not request.headers.get("x-twilio-signature"):
                raise Refused(403, "invalid Twilio signature")
        elif path.startswith("/slack/"):
            stamp = request.headers.get("x-slack-request-timestamp", "")
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= _SLACK_WINDOW
            if not self.slack_ready or not request.headers.get("x-slack-signature") or not fresh:
                raise Refused(403, "invalid Slack signature")

    # 4. The body -------------------------------------------------------------------------

    def limit(self, path: str) -> int:
        return self.big if path in _BIG else self.small

    async def read(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise Refused(400, "client went away before the body was complete")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise Refused(413, f"body larger than {limit} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise Refused(
                408, f"body not received within {self.timeout:g} s (server.body_timeout)"
            ) from None

    # The middleware ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        request = Request(scope)
        try:
            self.check_browser(request, path)
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise Refused(415, f"Content-Encoding {encoding[:40]!r} is not accepted")
            if request.method not in _SAFE_METHODS:
                # Reads authenticate in the routes (they take no body worth reading); a
                # wrong method on a signed path is then the router's 405, not a 403.
                self.check_caller(request, path)
            limit = self.limit(path)
            declared = request.headers.get("content-length", "")
            if declared and (not declared.isdigit() or int(declared) > limit):
                if declared.isdigit():
                    raise Refused(413, f"body larger than {limit} bytes")
                raise Refused(400, "Content-Length is not a number")
            body = await self.read(receive, limit)
            if body and path.startswith("/api/v1/") and _is_json(request):
                try:
                    body = json.dumps(parse_json(body)).encode()
                except BadBody as exc:
                    raise Refused(exc.code, exc.message) from exc
        except Refused as refused:
            await self.refuse(path, refused, send)
            return
        await self.app(_with_body(scope, body), _replay(body, receive), send)

    async def refuse(self, path: str, refused: Refused, send: Send) -> None:
        if path == WEBHOOK:
            # Counted like the route's answers.
            self.daemon.metrics.webhook_requests.labels(str(refused.code)).inc()
        if path in _BIG[1:]:  # PagerDuty's shape for its senders
            from escalator.ingest.events_v2 import INVALID

            payload: dict[str, Any] = {**INVALID, "errors": [refused.message]}
        else:
            payload = {"error": refused.message}
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if refused.code in (408, 413):
            headers.append((b"connection", b"close"))  # the rest of the body is not wanted
        await send({"type": "http.response.start", "status": refused.code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "application/json").lower()
    return "json" in kind or kind.startswith("text/plain")


def _with_body(scope: Scope, body: bytes) -> Scope:
    """The scope with Content-Length matching the (possibly normalised) buffered body."""
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length",)]
    headers.append((b"content-length", str(len(body)).encode()))
    changed: MutableMapping[str, Any] = dict(scope)
    changed["headers"] = headers
    return changed


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A `receive` that hands the buffered body over once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
