"""Issue 11, the HTTP edge and what leaves the daemon: hostile input is refused early and
cheaply with a 4xx and its reason, and text from outside never reaches a terminal, a
header, a chat post or the store in a form that breaks them. One test per finding, on
both stores where a store is involved.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from escalator.cli.main import main as cli
from escalator.config import Secret, TwilioChannel
from escalator.notify.channels.base import Delivery, Message
from escalator.notify.channels.chat import ChatChannel
from escalator.notify.channels.console import ConsoleChannel
from escalator.notify.channels.email import EmailChannel
from escalator.store.db import make_engine
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow
from escalator.web.app import create_app
from escalator.web.server import uvicorn_options
from tests.support.helpers import alert_rows, am_alert, am_body, count_rows, shipped_config
from tests.support.rig import Rig
from tests.support.servers import running_server

HOOK = "edge-hook-token-0123456789"
API = "edge-api-token-9876543210"
TWILIO_TOKEN = "edge-twilio-auth-token"
PUBLIC = "https://escalator.example.net"
HOOK_AUTH = {"Authorization": f"Bearer {HOOK}", "Content-Type": "application/json"}
API_AUTH = {"Authorization": f"Bearer {API}"}
ALICE_PHONE = "+15550100001"


def edge_rig(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tokens: bool = True,
    recorder: Any = None,
    **server: Any,
) -> Rig:
    """The shipped config, Twilio replies configured, `server` settings overridden."""
    monkeypatch.setenv("EDGE_TWILIO_TOKEN", TWILIO_TOKEN)
    if tokens:
        monkeypatch.setenv("ESCALATOR_WEBHOOK_TOKEN", HOOK)
        monkeypatch.setenv("ESCALATOR_API_TOKEN", API)
    else:
        monkeypatch.delenv("ESCALATOR_WEBHOOK_TOKEN", raising=False)
        monkeypatch.delenv("ESCALATOR_API_TOKEN", raising=False)
    config = shipped_config()
    twilio = TwilioChannel(
        account_sid="AC" + "5" * 32,
        auth_token=Secret(env="EDGE_TWILIO_TOKEN"),
        from_number="+15550109999",
    )
    config = config.model_copy(
        update={
            "server": config.server.model_copy(update={"public_url": PUBLIC, **server}),
            "channels": config.channels.model_copy(update={"twilio": twilio}),
        }
    )
    return Rig(database_url, config=config, recorder=recorder)


@pytest.fixture
def rig(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    made = edge_rig(database_url, monkeypatch)
    yield made
    made.close()


@pytest.fixture
def client(rig: Rig) -> Iterator[TestClient]:
    with TestClient(create_app(rig.daemon, run_engine=False), client=("10.0.0.7", 4000)) as c:
        yield c


def written(rig: Rig) -> tuple[int, int, int]:
    return tuple(count_rows(rig.factory, t) for t in (AlertRow, TimelineRow, OutboxRow))  # type: ignore[return-value]


# 1. Authenticate before the body; cap every body -----------------------------------------


def _asgi(app: Any, method: str, path: str, headers: dict[str, str], size: int) -> tuple[int, int]:
    """Call the app with a streamed body of `size` bytes (1 MB chunks, no Content-Length);
    the answer's status and how many body bytes the app pulled before answering."""
    chunk, pulled, status = b"x" * (1 << 20), 0, 0
    left = size

    async def receive() -> dict[str, Any]:
        nonlocal pulled, left
        if left <= 0:
            return {"type": "http.request", "body": b"", "more_body": False}
        piece = chunk[: min(left, len(chunk))]
        left -= len(piece)
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": left > 0}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("10.0.0.7", 4000), "server": ("127.0.0.1", 8080),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return status, pulled


def test_unauthenticated_bodies_are_not_read_and_every_body_is_capped(rig: Rig) -> None:
    app = create_app(rig.daemon, run_engine=False)
    big = 48 << 20
    json_type = {"Content-Type": "application/json", "Host": "escalator.example.net"}
    # No token: 401 before a single byte of the 48 MB is read.
    assert _asgi(app, "POST", "/api/v1/alerts/ack", json_type, big) == (401, 0)
    assert _asgi(app, "POST", "/webhooks/alertmanager", json_type, big) == (401, 0)
    # Unsigned Twilio and Slack posts: 403 unread.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _asgi(app, "POST", "/twilio/sms", form, big) == (403, 0)
    assert _asgi(app, "POST", "/slack/commands", form, big) == (403, 0)
    # With the token, the webhook reads at most its cap (1 MiB) plus one chunk, then 413.
    status, pulled = _asgi(app, "POST", "/webhooks/alertmanager", {**HOOK_AUTH}, big)
    assert status == 413 and pulled <= rig.daemon.config.server.max_body_bytes + (1 << 20)
    # Every other endpoint has the small cap (64 KiB): 100 KB to the API is a 413.
    auth = {**API_AUTH, "Content-Type": "application/json"}
    status, pulled = _asgi(app, "POST", "/api/v1/alerts/ack", auth, 100_000)
    assert status == 413 and pulled <= 100_000
    # Events API v2 (authenticated by a routing key in the body) has the webhook's cap.
    status, pulled = _asgi(app, "POST", "/v2/enqueue", {"Content-Type": "application/json"}, big)
    assert status == 413 and pulled <= (2 << 20)
    with TestClient(app) as client:  # a declared Content-Length over the cap: unread, 413
        answer = client.post("/api/v1/alerts/ack", content=b"{" * 70_000, headers=auth)
        assert answer.status_code == 413 and "larger than 65536 bytes" in answer.json()["error"]
    assert written(rig) == (0, 0, 0)


# 2. Header and body deadlines --------------------------------------------------------------


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it sent before that."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True, got
            got += data
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_half_sent_requests_are_cut_off_and_do_not_starve_the_webhook(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    rig = edge_rig(
        database_url,
        monkeypatch,
        header_timeout=timedelta(seconds=1),
        body_timeout=timedelta(seconds=1),
    )
    app = create_app(rig.daemon, run_engine=False, bind_host="127.0.0.1")
    options = uvicorn_options(rig.daemon.config.server)
    served = running_server(app, log_level="critical", lifespan="off", **options)
    idle: list[socket.socket] = []
    try:
        url = served.__enter__()
        port = int(url.rpartition(":")[2])
        # 200 connections that sent half a request line, and a few that sent headers and
        # half a body: none gets to hold its connection.
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A")
            idle.append(sock)
        body_sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body_sock.sendall(
            b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {HOOK}\r\nContent-Type: application/json\r\n".encode()
            + b'Content-Length: 1000\r\n\r\n{"version": '
        )
        # Meanwhile Alertmanager's post goes through at once.
        started = time.monotonic()
        answer = httpx.post(
            f"{url}/webhooks/alertmanager",
            json=am_body(am_alert()),
            headers={"Authorization": f"Bearer {HOOK}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started < 2
        closed, sent = _closed_within(body_sock, 5)
        assert closed and sent.startswith(b"HTTP/1.1 408"), sent[:80]
        assert all(_closed_within(sock, 5)[0] for sock in idle[:20])
    finally:
        for sock in idle:
            sock.close()
        served.__exit__(None, None, None)
        rig.close()


# 3. Malformed bodies and out-of-range values are 4xx with the reason -----------------------

DEEP = "[" * 20_000 + "]" * 20_000
NESTED = "[" * 100 + "]" * 100  # parses, but deeper than web.bodies.MAX_DEPTH
ALERT = '{"status": "firing", "startsAt": "2026-03-02T19:00:00Z", "fingerprint": "f1", '
LONG_INT = '{"version": "4", "alerts": [], "x": ' + "9" * 4_400 + "}"


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "code", "reason"),
    [
        ("POST", "/webhooks/alertmanager", b'{"a": "\xff\xfe"}', HOOK_AUTH, 400, "not UTF-8"),
        (
            "POST",
            "/webhooks/alertmanager",
            b"\x1f\x8b\x08\x00",
            {**HOOK_AUTH, "Content-Encoding": "gzip"},
            415,
            "gzip",
        ),
        ("POST", "/webhooks/alertmanager", DEEP.encode(), HOOK_AUTH, 400, "nested deeper"),
        ("POST", "/webhooks/alertmanager", LONG_INT.encode(), HOOK_AUTH, 400, "digits"),
        # The webhook bounds depth only when it refuses something (web/webhooks.py): a body
        # that fails as a whole, and a refused entry that would be kept as sent.
        (
            "POST",
            "/webhooks/alertmanager",
            f'{{"version": "4", "status": "firing", "alerts": {{"a": {NESTED}}}}}'.encode(),
            HOOK_AUTH,
            400,
            "nested deeper",
        ),
        (
            "POST",
            "/webhooks/alertmanager",
            (
                f'{{"version": "4", "status": "firing", "alerts": [{ALERT}"labels": '
                f'{{"alertname": "A"}}}}, {ALERT}"labels": {{"alertname": {NESTED}}}}}]}}'
            ).encode(),
            HOOK_AUTH,
            400,
            "nested deeper",
        ),
        # A startsAt out of range (0001-01-01T00:00:00+01:00, 9999-12-31T23:59:59-01:00)
        # sinks only its own alert: 200 with `rejected` (tests/test_ingest_edges.py).
        ("POST", "/v2/enqueue", DEEP.encode(), {"Content-Type": "application/json"}, 400, "nested"),
        (
            "POST",
            "/api/v1/alerts/ack",
            b'{"ids": [99999999999999999999], "by": "alice"}',
            API_AUTH,
            422,
            "ids",
        ),
        (
            "POST",
            "/api/v1/alerts/ack",
            b'{"ids": [1], "by": "alice", "until": "9999-12-31T23:59:59-01:00"}',
            API_AUTH,
            422,
            "until",
        ),
        ("POST", "/api/v1/alerts/ack", b'{"ids": [1], "by": "\xff"}', API_AUTH, 400, "not UTF-8"),
        (
            "POST",
            "/api/v1/alerts/snooze",
            b'{"ids": [1], "by": "alice", "for": "99999999999d"}',
            API_AUTH,
            422,
            "for",
        ),
        ("GET", "/api/v1/alerts/99999999999999999999", b"", API_AUTH, 422, "alert_id"),
        ("GET", "/api/v1/alerts?offset=9223372036854775808", b"", API_AUTH, 422, "offset"),
        ("GET", "/api/v1/oncall?at=0001-01-01T00:00:00%2B01:00", b"", API_AUTH, 422, "at"),
        ("GET", "/api/v1/schedule?start=9999-12-31T23:59:59-01:00", b"", API_AUTH, 422, "start"),
        ("GET", "/api/v1/report?since=99999999999999d", b"", API_AUTH, 422, "since"),
        (
            "DELETE",
            "/api/v1/overrides/99999999999999999999?by=alice",
            b"",
            API_AUTH,
            422,
            "override_id",
        ),
        (
            "POST",
            "/api/v1/maintenance/99999999999999999999/end",
            b'{"by": "alice"}',
            API_AUTH,
            422,
            "window_id",
        ),
    ],
)
def test_malformed_bodies_and_values_are_4xx_with_the_reason(
    rig: Rig,
    client: TestClient,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    code: int,
    reason: str,
) -> None:
    answer = client.request(method, path, content=body, headers=headers)
    assert answer.status_code == code, answer.text
    assert reason in answer.text
    assert written(rig) == (0, 0, 0)


def test_nesting_in_fields_the_webhook_ignores_does_not_refuse_the_body(
    rig: Rig, client: TestClient
) -> None:
    """What the model drops cannot reach the store: the alerts beside it are taken."""
    body = json.dumps(am_body(am_alert(fingerprint="fp-nested")))
    body = body[:-1] + f', "extra": {NESTED}}}'
    answer = client.post("/webhooks/alertmanager", content=body.encode(), headers=HOOK_AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["opened"] and written(rig)[0] == 1


def test_events_v2_timestamps_out_of_range_are_400_not_500(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escalator.config import Integration

    monkeypatch.setenv("EDGE_ROUTING_KEY", "k" * 32)
    config = shipped_config()
    key = Integration(name="grafana", key=Secret(env="EDGE_ROUTING_KEY"))
    rig = Rig(database_url, config=config.model_copy(update={"integrations": [key]}))
    try:
        client = TestClient(create_app(rig.daemon, run_engine=False))
        for path, payload in [
            ("/v2/change/enqueue", {"summary": "deploy", "source": "ci"}),
            ("/v2/enqueue", {"summary": "x", "source": "s", "severity": "critical"}),
        ]:
            for stamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
                body = {"routing_key": "k" * 32, "event_action": "trigger",
                        "payload": {**payload, "timestamp": stamp}}  # fmt: skip
                answer = client.post(path, json=body)
                assert answer.status_code == 400, (path, stamp, answer.text)
                assert "out of range" in answer.text
        assert written(rig) == (0, 0, 0)
    finally:
        rig.close()


def _sign(url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(url, params))


def test_a_signed_sms_naming_an_impossible_alert_number_is_answered_not_500(
    rig: Rig, client: TestClient
) -> None:
    for number in ("99999999999999999999999", "9" * 5000):
        params = {"From": ALICE_PHONE, "Body": f"ACK {number}"}
        answer = client.post(
            "/twilio/sms",
            data=params,
            headers={"X-Twilio-Signature": _sign(f"{PUBLIC}/twilio/sms", params)},
        )
        assert answer.status_code == 200, answer.text
        assert "No such alert" in answer.text
    assert written(rig) == (0, 0, 0)


# 4. Lone surrogates and NUL are normalised at the edge ------------------------------------


def test_lone_surrogates_and_nul_are_stored_the_same_on_both_backends(
    rig: Rig, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = am_alert()
    alert["annotations"]["summary"] = "disk \x00 full \ud800 now"
    alert["labels"]["team"] = "ops\ud800"
    alert["annotations"]["note"] = "nul\x00here"
    raw = json.dumps(am_body(alert))  # ensure_ascii: "\ud800" and "\u0000" escapes, valid JSON
    answer = client.post("/webhooks/alertmanager", content=raw, headers=HOOK_AUTH)
    assert answer.status_code == 200, answer.text
    (row,) = alert_rows(rig.factory)
    assert row.labels["team"] == "ops\ufffd"
    assert row.annotations["note"] == "nul\ufffdhere"
    listed = client.get("/api/v1/alerts", headers=API_AUTH)
    assert listed.status_code == 200 and "ops\ufffd" in listed.text
    assert client.get(f"/api/v1/alerts/{row.id}", headers=API_AUTH).status_code == 200
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", str(rig.daemon.db.url.render_as_string(False)))
    shown = CliRunner().invoke(cli, ["show", str(row.id)])
    assert shown.exit_code == 0, shown.output
    assert "team=ops\ufffd" in shown.output
    # The page (bundle rendering) for it renders too.
    rig.daemon.sender.drain()
    assert rig.rec.sent, "level 0 was not delivered"


# 5. Quick-start mode: DNS rebinding and cross-site posts ----------------------------------


def test_quick_start_refuses_rebinding_hosts_and_cross_site_posts(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = edge_rig(database_url, monkeypatch, tokens=False)
    try:
        assert rig.daemon.webhook_token is None and rig.daemon.api_token is None
        app = create_app(rig.daemon, run_engine=False, bind_host="127.0.0.1")
        body = json.dumps(am_body(am_alert()))
        rebound = TestClient(app, client=("127.0.0.1", 5000), base_url="http://rebind.evil.example")
        assert rebound.get("/api/v1/alerts").status_code == 403
        assert rebound.post("/webhooks/alertmanager", content=body).status_code == 403
        local = TestClient(app, client=("127.0.0.1", 5000), base_url="http://127.0.0.1:8080")
        cross = local.post(
            "/webhooks/alertmanager",
            content=body,
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        )
        assert cross.status_code == 403 and "another origin" in cross.json()["error"]
        fetch = local.post(
            "/webhooks/alertmanager", content=body, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert fetch.status_code == 403
        assert written(rig) == (0, 0, 0)
        # The daemon's own names still work: loopback, localhost, the public_url's host.
        assert local.get("/api/v1/alerts").status_code == 200
        for base in ("http://localhost:8080", "http://[::1]:8080", PUBLIC):
            named = TestClient(app, client=("127.0.0.1", 5000), base_url=base)
            assert named.get("/api/v1/alerts").status_code == 200, base
        assert local.post("/webhooks/alertmanager", content=body).status_code == 200
        assert len(alert_rows(rig.factory)) == 1
    finally:
        rig.close()


# 6. Secret URLs are not logged by httpx --------------------------------------------------


def test_chat_delivery_does_not_log_the_webhook_url(caplog: pytest.LogCaptureFixture) -> None:
    secret_url = "https://hooks.slack.example/services/T000/B000/s3cr3tTok3n"
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(200, text="ok")

    chat = ChatChannel({"incidents": secret_url})
    chat._client = httpx.Client(transport=httpx.MockTransport(handler))
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.INFO)
    delivery = Delivery(1, 1, "channel", "incidents", "chat", None, 0, "page", "level 0", 0)
    message = Message(
        1, "[CRITICAL] #1 <!channel> Disk", "a <https://evil.example|link> & more", ""
    )
    assert chat.send(delivery, message).outcome == "sent"
    assert "s3cr3tTok3n" not in caplog.text
    # Slack markup in alert text is escaped: it pings nobody and hides no link.
    text = posted[0]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example|link>" not in text and "&amp; more" in text


# 7. E-mail subjects are one line ----------------------------------------------------------


def test_email_subject_with_a_line_break_is_folded_not_lost() -> None:
    from escalator.config import EmailChannel as EmailSettings

    channel = EmailChannel(
        EmailSettings(host="127.0.0.1", port=25, security="none", from_address="e@example.com")
    )
    delivery = Delivery(1, 1, "person", "alice", "email", "a@example.com", 0, "page", "l0", 0)
    message = Message(1, "[CRITICAL] #1 Disk\r\nBcc: victim@example.com\nfull", "body", "ack")
    mail = channel.compose(delivery, message)
    raw = mail.as_bytes()  # raised ValueError before: a header may not hold a line break
    assert mail["Subject"] == "[CRITICAL] #1 Disk Bcc: victim@example.com full"
    assert b"\nBcc:" not in raw


# 8. Control characters never reach a terminal --------------------------------------------


def test_console_and_cli_output_escape_control_characters(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = "[escalator] 2026-03-02T19:00:00Z PAGE mallory: all is well"
    # The console standing in for another method prints one line, whatever the text holds.
    out = io.StringIO()
    delivery = Delivery(1, 1, "person", "alice", "sms", None, 0, "page", "level 0", 0)
    ConsoleChannel(out).send(delivery, Message(1, f"\x1b[2J\x1b[31mDisk\n{forged}", "", "ack"))
    printed = out.getvalue()
    assert printed.count("\n") == 1 and "\x1b" not in printed
    assert "\\x1b[2J" in printed and "\\n[escalator]" in printed
    # Pages and incident notices rendered for the console, through the real sender.
    screen = io.StringIO()
    rig = edge_rig(database_url, monkeypatch, recorder=ConsoleChannel(screen))
    client = TestClient(create_app(rig.daemon, run_engine=False), client=("10.0.0.7", 4000))
    # `list` and `show` over an alert named with an escape sequence and a newline.
    alert = am_alert()
    alert["annotations"]["summary"] = f"line one\n{forged}"
    alert["labels"]["alertname"] = "Evil\x1b]0;owned\x07Name"
    assert client.post("/webhooks/alertmanager", json=am_body(alert), headers=HOOK_AUTH).is_success
    (row,) = alert_rows(rig.factory)
    rig.daemon.sender.drain()
    rig.daemon.engine.tick()  # the incident notices (critical alert) print too
    rig.daemon.sender.drain()
    lines = screen.getvalue().splitlines()
    assert len(lines) >= 2 and "\x1b" not in screen.getvalue()
    assert not any(line.startswith(forged[:45]) for line in lines)  # no forged line
    assert any("line one\\n[escalator]" in line for line in lines)
    assert any("Evil\\x1b]0;owned\\x07Name" in line for line in lines)
    monkeypatch.setenv("ESCALATOR_DATABASE_URL", str(rig.daemon.db.url.render_as_string(False)))
    for args in (["list"], ["show", str(row.id)]):
        shown = CliRunner().invoke(cli, args)
        assert shown.exit_code == 0, shown.output
        assert "\x1b" not in shown.output and "\x07" not in shown.output
        assert "Evil\\x1b]0;owned\\x07Name" in shown.output
    shown = CliRunner().invoke(cli, ["show", str(row.id)])
    assert f"line one\\n{forged}" in shown.output
    rig.close()


# 9. The SQLite file is private ------------------------------------------------------------


def test_the_sqlite_folder_and_file_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "escalator" / "escalator.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.commit()
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# 10. Roster names with control characters are refused -------------------------------------


def test_check_config_refuses_a_rotation_name_with_a_line_break(tmp_path: Path) -> None:
    from tests.support.helpers import SHIPPED_CONFIG

    text = SHIPPED_CONFIG.read_text()
    assert "    name: On-call engineer\n" in text
    bad = tmp_path / "escalator.yaml"
    bad.write_text(text.replace("    name: On-call engineer\n", '    name: "On-call\\r\\nX"\n', 1))
    result = CliRunner().invoke(cli, ["check-config", str(bad)])
    assert result.exit_code != 0
    assert "control characters" in result.output


# 11. The OpenAPI schema is a complete contract; wrong methods are 405 ----------------------


def test_openapi_documents_errors_and_bodies_and_wrong_methods_are_405(
    rig: Rig, client: TestClient
) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "403", "413", "415"} <= codes, (method, path, codes)
            if path.startswith("/api/v1"):
                assert {"401", "503"} <= codes, (method, path)
    hook = schema["paths"]["/webhooks/alertmanager"]["post"]
    assert {"401", "503"} <= set(hook["responses"])
    body = hook["requestBody"]["content"]["application/json"]["schema"]
    assert "alerts" in body["properties"]
    sms = schema["paths"]["/twilio/sms"]["post"]["requestBody"]["content"]
    assert "Body" in sms["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert "requestBody" in schema["paths"]["/v2/enqueue"]["post"]
    for method, path in [
        ("GET", "/api/v1/alerts/ack"),
        ("GET", "/webhooks/alertmanager"),
        ("GET", "/api/v1/maintenance/1/end"),
        ("PUT", "/api/v1/alerts/1"),
        ("GET", "/twilio/sms"),
    ]:
        answer = client.request(method, path, headers=API_AUTH)
        assert answer.status_code == 405, (method, path, answer.status_code)
