"""The web console over HTTP, in process: who may see and act, CSRF, escaping, paging.

The app is the one `escalator serve` runs (create_app over build_daemon, engine not
started, a fixed clock); the test client connects from whatever address a case needs
(loopback, a trusted proxy, a stranger). What an action did is read from the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from escalator.config import load_config
from escalator.daemon import build_daemon
from escalator.store.clock import FixedClock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow
from escalator.web.app import create_app
from escalator.web.ui import logins
from tests.support.console import csrf_of, webhook_body, write_config
from tests.support.rig import Recorder

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LOOPBACK = ("127.0.0.1", 40000)
PROXY = ("10.0.0.7", 40000)
STRANGER = ("203.0.113.9", 40000)
XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


class Console:
    def __init__(self, tmp_path: Path, database_url: str, **server: Any) -> None:
        config = load_config(write_config(tmp_path / "escalator.yaml", **server))
        self.clock = FixedClock(NOW)
        self.daemon = build_daemon(
            config, database_url, clock=self.clock, channels={"console": Recorder()}
        )
        self.app = create_app(self.daemon, run_engine=False)
        with transaction(self.daemon.factory) as session:  # the PostgreSQL db is shared
            for row in session.scalars(select(logins.ConsoleTokenRow)):
                session.delete(row)

    def client(self, peer: tuple[str, int] = LOOPBACK, **headers: str) -> TestClient:
        # Off loopback the console sets Secure cookies: the browser talks https (to the proxy).
        scheme = "http" if peer == LOOPBACK else "https"
        client = TestClient(self.app, client=peer, base_url=f"{scheme}://console.test")
        client.headers.update(headers)
        return client

    def fire(self, body: dict[str, Any]) -> list[int]:
        response = self.client().post("/webhooks/alertmanager", json=body)
        assert response.status_code == 200, response.text
        return list(response.json()["opened"])

    def alert(self, alert_id: int) -> AlertRow:
        with transaction(self.daemon.factory) as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            session.expunge(row)
            return row

    def token(self, person: str) -> str:
        with transaction(self.daemon.factory) as session:
            return logins.set_token(session, person, NOW)

    def close(self) -> None:
        self.daemon.stop()


@pytest.fixture
def console(tmp_path: Path, sqlite_url: str) -> Iterator[Console]:
    made = Console(tmp_path, sqlite_url)
    yield made
    made.close()


def login_local(client: TestClient, person: str = "alice") -> None:
    """The loopback console without tokens: say who you are (no token asked)."""
    page = client.get("/ui/login")
    response = client.post(
        "/ui/login",
        data={"csrf": csrf_of(page.text), "person": person, "next": "/ui/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def test_pages_render_escaped_with_strict_headers(tmp_path: Path, database_url: str) -> None:
    made = Console(tmp_path, database_url)
    try:
        [alert_id] = made.fire(webhook_body("Api<b>Down</b>", summary=XSS, team="<i>ops</i>"))
        client = made.client()
        root = client.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/ui/"
        for path in (
            "/ui/",
            f"/ui/alerts/{alert_id}",
            "/ui/oncall",
            "/ui/incidents",
            "/ui/report",
            "/ui/login",
            "/ui/fragment/alerts",
        ):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert response.headers["x-frame-options"] == "DENY"
            assert "<script>alert" not in response.text and "<img src=x" not in response.text
            assert "<b>Down" not in response.text and "<i>ops" not in response.text
        detail = client.get(f"/ui/alerts/{alert_id}").text
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail
        assert "Api&lt;b&gt;Down&lt;/b&gt;" in detail and "&lt;i&gt;ops&lt;/i&gt;" in detail
        # Links from annotations are links only when they are http(s).
        [other] = made.fire(webhook_body("Sneaky", fingerprint="fp-sneaky"))
        with transaction(made.daemon.factory) as session:
            row = session.get(AlertRow, other)
            assert row is not None
            row.annotations = {"runbook_url": "javascript:alert(3)"}
        assert 'href="javascript:' not in client.get(f"/ui/alerts/{other}").text
        # Not a single inline script or style in any page: the CSP would block them anyway.
        assert "<script>" not in detail and "style=" not in detail
    finally:
        made.close()


def test_local_operator_sees_but_acts_only_as_a_roster_person(console: Console) -> None:
    [alert_id] = console.fire(webhook_body("DiskFull"))
    client = console.client()
    page = client.get("/ui/")
    assert "local operator" in page.text and "DiskFull" in page.text
    assert "Acknowledge" not in page.text  # no action buttons before saying who
    csrf = csrf_of(client.get("/ui/login").text)
    refused = client.post(f"/ui/alerts/{alert_id}/ack", data={"csrf": csrf})
    assert refused.status_code == 403 and "say who you are" in refused.text
    assert console.alert(alert_id).status == "triggered"
    login_local(client, "alice")
    # On loopback the cookies are not Secure (plain http), but HttpOnly and SameSite=Strict.
    page = client.get("/ui/")
    done = client.post(
        f"/ui/alerts/{alert_id}/ack",
        data={"csrf": csrf_of(page.text), "back": "/ui/"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/ui/"
    row = console.alert(alert_id)
    assert (row.status, row.acked_by, row.ack_via) == ("acknowledged", "alice", "web")
    shown = client.get("/ui/").text
    assert f"#{alert_id}: acknowledged by alice via web" in shown


def test_no_action_by_get_and_none_without_csrf(console: Console) -> None:
    [alert_id] = console.fire(webhook_body("DiskFull"))
    client = console.client()
    login_local(client)
    assert client.get(f"/ui/alerts/{alert_id}/resolve").status_code == 405
    token = csrf_of(client.get("/ui/").text)
    refused = [
        client.post(f"/ui/alerts/{alert_id}/resolve", data={}),
        client.post(f"/ui/alerts/{alert_id}/resolve", data={"csrf": "0" * 64}),
        client.post(
            f"/ui/alerts/{alert_id}/resolve",
            data={"csrf": token},
            headers={"Sec-Fetch-Site": "cross-site"},
        ),
        client.post(
            f"/ui/alerts/{alert_id}/resolve",
            data={"csrf": token},
            headers={"Origin": "https://evil.example"},
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert "CSRF token missing" in refused[0].text and "CSRF token wrong" in refused[1].text
    # A CSRF token from another browser (another nonce cookie) is no good either.
    other = console.client()
    other_token = csrf_of(other.get("/ui/login").text)
    assert other_token != token
    wrong = client.post(f"/ui/alerts/{alert_id}/resolve", data={"csrf": other_token})
    assert wrong.status_code == 403
    assert console.alert(alert_id).status == "triggered"
    ok = client.post(f"/ui/alerts/{alert_id}/resolve", data={"csrf": token})
    assert ok.status_code == 200 and console.alert(alert_id).status == "resolved"


def test_proxy_header_only_from_the_trusted_proxy(tmp_path: Path, sqlite_url: str) -> None:
    made = Console(tmp_path, sqlite_url, console={"trusted_proxies": ["10.0.0.0/8"]})
    try:
        [alert_id] = made.fire(webhook_body("DiskFull"))
        header = {"X-Forwarded-Email": "Alice@Example.test"}
        for peer in (STRANGER, LOOPBACK):
            spoofed = made.client(peer, **header).get("/ui/")
            assert spoofed.status_code == 403
            assert "only accepted from the configured proxy" in spoofed.text
        assert made.client(PROXY).get("/ui/").status_code == 401  # proxy sent no identity
        unknown = made.client(PROXY, **{"X-Forwarded-Email": "mallory@example.test"})
        assert unknown.get("/ui/").status_code == 403
        # With a proxy configured, loopback is no longer open either.
        assert made.client(LOOPBACK).get("/ui/", follow_redirects=False).status_code == 303
        proxied = made.client(PROXY, **header)
        page = proxied.get("/ui/")
        assert page.status_code == 200 and "Alice Oncall" in page.text
        done = proxied.post(f"/ui/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200
        assert made.alert(alert_id).acked_by == "alice"
    finally:
        made.close()


def test_token_login_secure_cookie_and_revocation(console: Console) -> None:
    [alert_id] = console.fire(webhook_body("DiskFull"))
    token = console.token("bob")
    # Once anyone has a token, loopback is no longer open: log in.
    assert console.client().get("/ui/", follow_redirects=False).status_code == 303
    browser = console.client(STRANGER)
    first = browser.get("/ui/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/ui/login")
    form = browser.get("/ui/login")
    assert "secure" in form.headers["set-cookie"].lower()  # not loopback: Secure cookies
    csrf = csrf_of(form.text)
    wrong = browser.post("/ui/login", data={"csrf": csrf, "person": "bob", "token": "nope"})
    assert wrong.status_code == 401
    stolen = browser.post("/ui/login", data={"csrf": csrf, "person": "alice", "token": token})
    assert stolen.status_code == 401  # bob's token is not alice's
    ok = browser.post(
        "/ui/login",
        data={"csrf": csrf, "person": "bob", "token": token, "next": "/ui/"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    session = ok.cookies["escalator_session"]
    page = browser.get("/ui/")
    assert page.status_code == 200 and "Bob Backup" in page.text
    browser.post(f"/ui/alerts/{alert_id}/ack", data={"csrf": csrf_of(page.text)})
    assert console.alert(alert_id).acked_by == "bob"
    console.token("bob")  # a new token ends the sessions of the old one
    assert browser.get("/ui/", follow_redirects=False).status_code == 303
    forged = session.rpartition(".")[0] + "." + "0" * 64
    browser.cookies.set("escalator_session", forged, domain="console.test")
    assert browser.get("/ui/", follow_redirects=False).status_code == 303


def test_alert_list_paginates_filters_and_says_what_fires_next(console: Console) -> None:
    body = webhook_body("Warn0", severity="warning")
    body["alerts"] = [
        webhook_body(f"Warn{i}", severity="warning", service="api" if i % 2 else "db")["alerts"][0]
        for i in range(110)
    ]
    console.fire(body)
    [critical] = console.fire(webhook_body("ApiDown", summary="API is down"))
    client = console.client()
    login_local(client)
    first = client.get("/ui/").text
    assert "111 alerts" in first and "page 1 of 3" in first
    assert first.count('class="card ') == 50
    assert client.get("/ui/?page=3").text.count('class="card ') == 11
    warnings = client.get("/ui/?severity=warning").text
    assert "110 alerts" in warnings and "ApiDown" not in warnings
    assert "55 alerts" in client.get("/ui/?label=service%3Dapi").text
    assert "1 alert" in client.get("/ui/?label=alertname%3DApiDown").text
    card = client.get("/ui/?severity=critical").text
    assert "Next: level 1 → bob (in 1s)" in card  # level 0 paged alice at ingest
    console.clock.advance(seconds=2)
    console.daemon.engine.tick()
    page = client.get(f"/ui/alerts/{critical}").text
    assert "Next: level 2 → carol (in 59m58s)" in page
    client.post(f"/ui/alerts/{critical}/ack", data={"csrf": csrf_of(page)})
    with transaction(console.daemon.factory) as session:
        bob = session.scalars(
            select(OutboxRow).where(OutboxRow.alert_id == critical, OutboxRow.level == 1)
        ).one()
        assert (bob.recipient, bob.status) == ("bob", "cancelled")
    # Acknowledged: the unacknowledged steps are done with; the unresolved level 2 is not.
    assert "Next: level 2 → carol (in 59m58s)" in client.get(f"/ui/alerts/{critical}").text


def test_ack_mine_takes_only_the_alerts_that_paged_me(console: Console) -> None:
    [critical] = console.fire(webhook_body("ApiDown"))  # level 0: alice
    [warning] = console.fire(webhook_body("SlowDisk", severity="warning"))  # primary: bob now
    client = console.client()
    login_local(client, "alice")
    page = client.get("/ui/").text
    assert "Acknowledge all mine (1)" in page
    client.post("/ui/alerts/ack-mine", data={"csrf": csrf_of(page)})
    assert console.alert(critical).acked_by == "alice"
    assert console.alert(warning).status == "triggered"
    login_local(client, "bob")
    page = client.get("/ui/").text
    assert "Acknowledge all mine (1)" in page
    client.post("/ui/alerts/ack-mine", data={"csrf": csrf_of(page)})
    assert console.alert(warning).acked_by == "bob"


def test_bad_form_input_is_a_clear_4xx_and_changes_nothing(console: Console) -> None:
    [alert_id] = console.fire(webhook_body("ApiDown"))
    client = console.client()
    login_local(client)
    csrf = csrf_of(client.get("/ui/").text)
    snooze = client.post(f"/ui/alerts/{alert_id}/snooze", data={"csrf": csrf, "for": "99y"})
    assert snooze.status_code == 422 and "snooze for one of" in snooze.text
    override = client.post(
        "/ui/oncall/overrides",
        data={"csrf": csrf, "rotation": "primary", "person": "carol", "until": "tomorrow"},
    )
    assert override.status_code == 422 and "YYYY-MM-DDTHH:MM" in override.text
    past = client.post(
        "/ui/oncall/overrides",
        data={"csrf": csrf, "rotation": "primary", "person": "carol", "until": "2020-01-01T00:00"},
    )
    assert past.status_code == 422
    update = client.post(f"/ui/incidents/{alert_id}/update", data={"csrf": csrf, "message": " "})
    assert update.status_code == 422 and "no message" in update.text
    postmortem = client.post(
        f"/ui/incidents/{alert_id}/postmortem", data={"csrf": csrf, "url": "javascript:alert(1)"}
    )
    assert postmortem.status_code == 422
    escape = client.post(
        f"/ui/alerts/{alert_id}/ack",
        data={"csrf": csrf, "back": "//evil.example/"},
        follow_redirects=False,
    )
    assert escape.headers["location"] == "/ui/"  # never an open redirect
    assert client.get("/ui/oncall").text.count("override #") == 0
