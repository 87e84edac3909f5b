"""The web console in a real browser: Debian's Chromium driven by Playwright, against a
real `escalator serve` process on a SQLite file, alerts posted through its webhook.

One daemon and one browser serve the whole module (Chromium takes seconds to start on
a shared machine); each test opens its own page and its own alerts. Nothing waits on a
fixed delay: every wait is for something to appear (in the page or in the database),
with a generous timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright import sync_api as playwright_api
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from escalator.store.db import make_engine, session_factory, transaction
from escalator.store.tables import (
    AlertRow,
    IncidentUpdateRow,
    OutboxRow,
    OverrideRow,
    TimelineRow,
)
from tests.support.console import CHROMIUM, PHONE, csrf_of, webhook_body, write_config
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, clean_env, run_cli, start_escalator

WAIT_MS = 30_000
T = TypeVar("T")


@dataclass
class Served:
    process: ManagedProcess
    factory: sessionmaker[Session]
    token: str

    @property
    def url(self) -> str:
        return self.process.base_url

    def fire(self, body: dict[str, Any]) -> int:
        response = httpx.post(f"{self.url}/webhooks/alertmanager", json=body, timeout=15)
        assert response.status_code == 200, response.text
        [opened] = response.json()["opened"]
        return int(opened)

    def wait_db(self, what: str, probe: Callable[[Session], T | None], timeout: float = 30) -> T:
        deadline = time.monotonic() + timeout
        while True:
            with transaction(self.factory) as session:
                found = probe(session)
            if found:
                return found
            assert self.process.alive(), self.process.logs()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.process.logs()}")
            time.sleep(0.2)

    def alert(self, alert_id: int) -> AlertRow:
        with transaction(self.factory) as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            session.expunge(row)
            return row


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("console")
    config = write_config(workdir / "escalator.yaml")
    url = f"sqlite:///{workdir / 'escalator.db'}"
    env = clean_env()
    process = start_escalator(workdir, config, url, free_port(), env)
    engine = make_engine(url)
    try:
        # The personal token, set with the CLI as an administrator would.
        result = run_cli(
            ["--config", str(config), "--database-url", url, "ui-token", "alice"], env, workdir
        )
        token = result.stdout.strip()
        assert len(token) >= 20 and "shown only now" in result.stderr
        yield Served(process, session_factory(engine), token)
    finally:
        process.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    with playwright_api.sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone(browser: Any, served: Served) -> Iterator[Any]:
    """A logged-in page on a 360x740 phone screen; dialogs (confirmations) accepted."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{served.url}/ui/")
    assert "/ui/login" in page.url  # a token exists: loopback is no longer open
    page.select_option("#person", "alice")
    page.fill("#token", served.token)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{served.url}/ui/")
    assert "Alice Oncall" in page.inner_text("header")
    yield page
    context.close()


def card(page: Any, alert_id: int) -> Any:
    return page.locator(f"#alert-{alert_id}")


def test_alert_appears_live_and_is_acknowledged_from_a_phone(served: Served, phone: Any) -> None:
    phone.evaluate("window.loadedOnce = true")  # gone if the page reloads
    alert_id = served.fire(webhook_body("PhoneAckDown", summary="Checkout is failing"))
    # Level 1 (bob, whose contact rule waits an hour) is in the outbox, pending.
    served.wait_db(
        "the pending level-1 page for bob",
        lambda s: s.scalars(
            select(OutboxRow).where(
                OutboxRow.alert_id == alert_id, OutboxRow.level == 1, OutboxRow.status == "pending"
            )
        ).first(),
    )
    card(phone, alert_id).wait_for()  # the list's live refresh brought it in
    assert phone.evaluate("window.loadedOnce") is True, "the page was reloaded"
    assert "Checkout is failing" in card(phone, alert_id).inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    card(phone, alert_id).get_by_role("button", name=f"Acknowledge alert {alert_id}").click()
    flash = phone.locator(".flash")
    flash.wait_for()
    assert f"#{alert_id}: acknowledged by alice via web" in flash.inner_text()
    row = served.alert(alert_id)
    assert (row.status, row.acked_by, row.ack_via) == ("acknowledged", "alice", "web")
    with transaction(served.factory) as session:
        level1 = session.scalars(
            select(OutboxRow).where(OutboxRow.alert_id == alert_id, OutboxRow.level == 1)
        ).all()
    assert [(o.recipient, o.status) for o in level1] == [("bob", "cancelled")]
    assert "acknowledged" in card(phone, alert_id).get_attribute("data-status")


def test_escalate_now_pages_the_next_level(served: Served, phone: Any) -> None:
    alert_id = served.fire(webhook_body("EscalateMeDown"))
    phone.reload()
    card(phone, alert_id).wait_for()
    card(phone, alert_id).get_by_role("button", name=f"Escalate alert {alert_id} now").click()
    phone.locator(".flash").wait_for()
    assert "escalated to level" in phone.locator(".flash").inner_text()
    with transaction(served.factory) as session:
        notes = session.scalars(
            select(TimelineRow).where(
                TimelineRow.alert_id == alert_id, TimelineRow.kind == "escalated_manually"
            )
        ).all()
        pages = session.scalars(
            select(OutboxRow).where(
                OutboxRow.alert_id == alert_id, OutboxRow.reason == "escalated manually"
            )
        ).all()
    assert [(n.actor, n.channel) for n in notes] == [("alice", "web")]
    assert len(pages) == 1 and pages[0].level == served.alert(alert_id).level
    # The alert page shows the level as fired by hand in the policy table.
    phone.goto(f"{served.url}/ui/alerts/{alert_id}")
    assert "escalated by hand" in phone.inner_text("#steps")


def test_override_added_shows_in_the_schedule(served: Served, phone: Any) -> None:
    phone.goto(f"{served.url}/ui/oncall")
    phone.select_option("#o-person", "carol")
    phone.click("#add-override button[type=submit]")
    flash = phone.locator(".flash")
    flash.wait_for()
    assert "carol holds primary" in flash.inner_text()
    with transaction(served.factory) as session:
        row = session.scalars(select(OverrideRow).where(OverrideRow.person == "carol")).one()
        override_id, created_by = row.id, row.created_by
    assert created_by == "alice"
    shifts = phone.locator("#shifts-primary li.override")
    assert shifts.count() >= 1
    assert "carol" in shifts.first.inner_text()
    assert f"override #{override_id}" in shifts.first.inner_text()
    assert "carol" in phone.inner_text("#now")  # on call now: the override holds
    phone.locator("#overrides form button:has-text('Remove')").first.click()
    phone.locator(".flash").wait_for()
    with transaction(served.factory) as session:
        assert session.get(OverrideRow, override_id) is None


def test_incident_update_is_posted(served: Served, phone: Any) -> None:
    alert_id = served.fire(webhook_body("IncidentDown", summary="Payments down"))
    phone.goto(f"{served.url}/ui/incidents")
    incident = phone.locator(f"#incident-{alert_id}")
    incident.locator("textarea").fill("Rolled back the deploy; watching error rates")
    incident.locator("select").select_option("MONITORING")
    incident.get_by_role("button", name="Post update").click()
    phone.locator(".flash").wait_for()
    assert "status update" in phone.locator(".flash").inner_text()
    with transaction(served.factory) as session:
        [update] = session.scalars(
            select(IncidentUpdateRow).where(IncidentUpdateRow.alert_id == alert_id)
        ).all()
        assert (update.author, update.status) == ("alice", "MONITORING")
        assert update.message == "Rolled back the deploy; watching error rates"
    shown = phone.locator(f"#incident-{alert_id} .last-update").inner_text()
    assert "[MONITORING] Rolled back the deploy" in shown and "alice" in shown


def test_html_in_an_annotation_is_shown_as_text(served: Served, phone: Any) -> None:
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    alert_id = served.fire(
        webhook_body("XssDown", summary=payload, team='<b onmouseover="window.pwned=3">x</b>')
    )
    for path in ("/ui/", f"/ui/alerts/{alert_id}"):
        phone.goto(f"{served.url}{path}")
        assert payload in phone.inner_text("main")
        assert phone.evaluate("window.pwned") is None
        assert phone.locator("main img").count() == 0
        assert phone.locator("main script").count() == 0
    assert '<b onmouseover="window.pwned=3">x</b>' in phone.inner_text("#labels")


def test_forged_posts_and_spoofed_proxy_header_are_refused(served: Served, phone: Any) -> None:
    alert_id = served.fire(webhook_body("ForgedDown"))
    session_cookie = next(
        c["value"] for c in phone.context.cookies() if c["name"] == "escalator_session"
    )
    cookies = {"escalator_session": session_cookie}
    # A logged-in browser's cookie, but no CSRF token: what a forged cross-site form sends.
    forged = httpx.post(
        f"{served.url}/ui/alerts/{alert_id}/resolve", cookies=cookies, data={"back": "/ui/"}
    )
    assert forged.status_code == 403
    assert served.alert(alert_id).status == "triggered"
    # Nor does a GET act.
    assert httpx.get(f"{served.url}/ui/alerts/{alert_id}/resolve").status_code == 405
    # No proxy is configured: the identity header is refused from anyone.
    spoofed = httpx.get(f"{served.url}/ui/", headers={"X-Forwarded-Email": "alice@example.test"})
    assert spoofed.status_code == 403
    # The real page's own form does work with the same cookie (and its CSRF cookie).
    page = httpx.get(f"{served.url}/ui/", cookies=cookies)
    csrf_cookie = page.cookies["escalator_csrf"]
    ok = httpx.post(
        f"{served.url}/ui/alerts/{alert_id}/resolve",
        cookies={**cookies, "escalator_csrf": csrf_cookie},
        data={"csrf": csrf_of(page.text)},
    )
    assert ok.status_code == 303
    assert served.alert(alert_id).status == "resolved"
