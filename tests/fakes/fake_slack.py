"""A loopback fake of the Slack Web API, and of Slack's side of an app's requests.

The real `slack_sdk` WebClient talks to it when its `base_url` (escalator's test-only
`channels.slack.api_base_url`) points at `http://127.0.0.1:PORT/api/`. It keeps a small
workspace: users with e-mail addresses, channels with members, topics, messages (with
metadata), pins and an archived flag, and answers the methods escalator uses as Slack does
(HTTP 200 with `{"ok": false, "error": ...}` for API errors, HTTP 429 with `Retry-After`
for `ratelimited`), with Slack's channel-name rules and `name_taken` on a second create.

Faults on demand: `fail(method, error, ...)` queues answers for the next calls of a method
(`ratelimited` with a Retry-After, `invalid_auth`, `internal_error` with HTTP 500, or a
"create but answer 500" that makes a client retry a call that already worked).

It also plays the person in Slack: `sign()` signs a request exactly as Slack signs
interactivity and slash-command posts (X-Slack-Signature, X-Slack-Request-Timestamp), and
`/respond/<id>` records what the app sends to a `response_url` (ephemeral answers).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

from slack_sdk.signature import SignatureVerifier

BOT_USER = "UBOT0001"
_NAME = re.compile(r"^[a-z0-9_-]+$")  # lowercase letters, digits, hyphens, underscores


@dataclass
class Channel:
    id: str
    name: str
    creator: str
    members: set[str] = field(default_factory=set)
    topic: str = ""
    archived: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    # A channel the bot may not post in unless it is a member (private, or not joined).
    requires_membership: bool = False


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float  # time.monotonic() when the request arrived
    status: int = 200
    error: str | None = None


@dataclass
class Fault:
    error: str
    status: int = 200
    retry_after: int | None = None
    # Do the call's work, then answer with this error anyway (a lost response).
    after_work: bool = False


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.error, self.status, self.headers = error, status, headers or {}


class FakeSlack:
    def __init__(self, bot_token: str, signing_secret: str):
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, Channel] = {}
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url id, body)
        self.views: list[dict[str, Any]] = []
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self._ids = 0
        self._ts = 0
        self._server: ThreadingHTTPServer | None = None

    # workspace --------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:07d}"

    def add_user(self, email: str, name: str = "") -> str:
        with self._lock:
            user_id = self._next_id("U")
            self.users[user_id] = {"id": user_id, "name": name or email, "email": email}
            return user_id

    def add_channel(self, name: str, requires_membership: bool = False) -> str:
        with self._lock:
            channel_id = self._next_id("C")
            self.channels[channel_id] = Channel(
                channel_id, name, "UADMIN", {BOT_USER}, requires_membership=requires_membership
            )
            return channel_id

    def channel_named(self, name: str) -> Channel | None:
        with self._lock:
            return next((c for c in self.channels.values() if c.name == name), None)

    def fail(
        self,
        method: str,
        error: str,
        times: int = 1,
        status: int | None = None,
        retry_after: int | None = None,
        after_work: bool = False,
    ) -> None:
        """Answer the next `times` calls of `method` with `error` (HTTP 429 for ratelimited)."""
        code = status if status is not None else (429 if error == "ratelimited" else 200)
        with self._lock:
            self._faults.setdefault(method, []).extend(
                Fault(error, code, retry_after, after_work) for _ in range(times)
            )

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def ok_calls(self, method: str) -> list[Call]:
        return [c for c in self.calls_of(method) if c.error is None]

    # Slack's side of the app's endpoints ---------------------------------------------------

    def sign(self, body: str, timestamp: int | None = None, secret: str | None = None) -> dict:
        """Headers for a request Slack would send with `body` (form-encoded)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        verifier = SignatureVerifier(secret or self.signing_secret)
        signature = verifier.generate_signature(timestamp=ts, body=body)
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature or "",
            "Content-Type": "application/x-www-form-urlencoded",
        }

    def response_url(self, key: str) -> str:
        return f"{self.base}/respond/{key}"

    def responses_to(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for k, body in self.responses if k == key]

    # server ---------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """What WebClient(base_url=...) takes: ends with a slash."""
        return f"{self.base}/api/"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                url = urlparse(self.path)
                args: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
                ctype = self.headers.get("content-type", "")
                if raw and "json" in ctype:
                    args.update(json.loads(raw))
                elif raw:
                    args.update(parse_qsl(raw.decode(), keep_blank_values=True))
                if url.path.startswith("/respond/"):
                    with fake._lock:
                        fake.responses.append((url.path.removeprefix("/respond/"), args))
                    self._answer(200, {"ok": True}, {})
                    return
                method = url.path.removeprefix("/api/")
                auth = self.headers.get("authorization", "")
                status, body, headers = fake._handle(method, args, auth)
                self._answer(status, body, headers)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # the Web API ------------------------------------------------------------------------------

    def _handle(
        self, method: str, args: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            call = Call(method, args, time.monotonic())
            self.calls.append(call)
            faults = self._faults.get(method)
            fault = faults.pop(0) if faults else None
            try:
                if fault is not None and not fault.after_work:
                    raise SlackError(fault.error, fault.status, _retry(fault))
                if auth != f"Bearer {self.bot_token}":
                    raise SlackError("invalid_auth" if auth else "not_authed")
                handler = getattr(self, "_m_" + method.replace(".", "_"), None)
                if handler is None:
                    raise SlackError("unknown_method", 404)
                result = handler(args)
                if fault is not None:  # the work is done; the answer is lost
                    raise SlackError(fault.error, fault.status, _retry(fault))
                return 200, {"ok": True, **result}, {}
            except SlackError as exc:
                call.status, call.error = exc.status, exc.error
                return exc.status, {"ok": False, "error": exc.error}, exc.headers

    def _channel(self, ref: Any, by_name: bool = False) -> Channel:
        """The channel `ref` names: an ID; a name too where Slack takes one (chat.postMessage).
        Every other method wants the ID, as Slack's conversations.* and pins.* do."""
        ref = str(ref or "")
        found = self.channels.get(ref)
        if found is None and by_name:
            name = ref.lstrip("#")
            found = next((c for c in self.channels.values() if c.name == name), None)
        if found is None:
            raise SlackError("channel_not_found")
        return found

    def _new_ts(self) -> str:
        self._ts += 1
        return f"{int(time.time())}.{self._ts:06d}"

    @staticmethod
    def _blocks(args: dict[str, Any]) -> list[Any]:
        blocks = args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    @staticmethod
    def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
        meta = args.get("metadata")
        return json.loads(meta) if isinstance(meta, str) else meta

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"user_id": BOT_USER, "team_id": "TFAKE", "bot_id": "BFAKE", "user": "escalator"}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"), by_name=True)
        if channel.archived:
            raise SlackError("is_archived")
        if channel.requires_membership and BOT_USER not in channel.members:
            raise SlackError("not_in_channel")
        message = {
            "type": "message",
            "user": BOT_USER,
            "ts": self._new_ts(),
            "text": args.get("text", ""),
            "blocks": self._blocks(args),
            "metadata": self._metadata(args),
            "edits": 0,
        }
        channel.messages.append(message)
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def _message(self, channel: Channel, ts: Any) -> dict[str, Any]:
        found = next((m for m in channel.messages if m["ts"] == ts), None)
        if found is None:
            raise SlackError("message_not_found")
        return found

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        message = self._message(channel, args.get("ts"))
        message["text"] = args.get("text", message["text"])
        if "blocks" in args:
            message["blocks"] = self._blocks(args)
        message["edits"] += 1
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}

    def _m_conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name") or "")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _NAME.match(name):
            raise SlackError("invalid_name_specials")
        if any(c.name == name for c in self.channels.values()):
            raise SlackError("name_taken")
        channel = Channel(self._next_id("C"), name, BOT_USER, {BOT_USER})
        self.channels[channel.id] = channel
        return {"channel": self._info(channel)}

    def _info(self, channel: Channel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": True,
            "is_archived": channel.archived,
            "is_member": BOT_USER in channel.members,
            "creator": channel.creator,
            "topic": {"value": channel.topic},
            "num_members": len(channel.members),
        }

    def _m_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._info(self._channel(args.get("channel")))}

    def _m_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """Paginated like Slack: `limit` per page, an opaque `next_cursor`."""
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0)
        exclude_archived = str(args.get("exclude_archived", "false")).lower() in ("1", "true")
        every = [c for c in self.channels.values() if not (exclude_archived and c.archived)]
        page = every[start : start + limit]
        nxt = str(start + limit) if start + limit < len(every) else ""
        return {
            "channels": [self._info(c) for c in page],
            "response_metadata": {"next_cursor": nxt},
        }

    def _m_conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        return {"members": sorted(channel.members), "response_metadata": {"next_cursor": ""}}

    def _m_conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if channel.archived:
            raise SlackError("is_archived")
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            raise SlackError("no_user")
        for user in users:
            if user == BOT_USER:
                raise SlackError("cant_invite_self")
            if user not in self.users:
                raise SlackError("user_not_found")
        new = [u for u in users if u not in channel.members]
        if not new:
            raise SlackError("already_in_channel")
        channel.members.update(new)
        return {"channel": self._info(channel)}

    def _m_conversations_setTopic(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        topic = str(args.get("topic") or "")
        if len(topic) > 250:
            raise SlackError("too_long")
        channel.topic = topic
        return {"channel": self._info(channel)}

    def _m_conversations_archive(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        if channel.archived:
            raise SlackError("already_archived")
        channel.archived = True
        return {}

    def _m_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        limit = int(args.get("limit") or 100)
        with_meta = str(args.get("include_all_metadata", "false")).lower() in ("1", "true")
        newest_first = list(reversed(channel.messages))[:limit]
        messages = [
            {k: v for k, v in m.items() if with_meta or k != "metadata"} for m in newest_first
        ]
        return {"messages": messages, "has_more": len(channel.messages) > limit}

    def _m_pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        ts = args.get("timestamp")
        self._message(channel, ts)
        if ts in channel.pins:
            raise SlackError("already_pinned")
        channel.pins.append(str(ts))
        return {}

    def _m_pins_list(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args.get("channel"))
        return {
            "items": [
                {"type": "message", "message": self._message(channel, ts)} for ts in channel.pins
            ]
        }

    def _m_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email") or "").lower()
        user = next((u for u in self.users.values() if u["email"].lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": _user(user)}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": _user(user)}

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise SlackError("invalid_trigger_id")
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        self.views.append({"trigger_id": args["trigger_id"], "view": view})
        return {"view": {"id": self._next_id("V"), **(view or {})}}


def _retry(fault: Fault) -> dict[str, str]:
    return {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}


def _user(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "name": user["name"],
        "real_name": user["name"],
        "profile": {"email": user["email"], "real_name": user["name"]},
        "deleted": False,
        "is_bot": False,
    }
