"""One rig for driving a daemon by hand: escalator's real daemon on a FixedClock, its engine
ticked and its sender drained by the test (the APScheduler runner never starts).

Two ways to build it, one class:
- `Rig(database_url, config)` records every delivery with a `Recorder` channel: the
  matrix tests read what each level paged.
- `paging_rig(...)` keeps the real channels from a YAML config pointed at the loopback
  fakes (Twilio, SMTP, chat) and serves the real HTTP app on a uvicorn thread, so the fakes
  can call the Twilio webhooks back.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from escalator.config import Config, parse_config
from escalator.daemon import Daemon, build_daemon
from escalator.ingest.alertmanager import AMWebhook, ingest
from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.store.clock import FixedClock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow
from escalator.web.app import create_app
from tests.fakes.fake_chat import FakeChat
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.smtp_sink import SmtpSink
from tests.support.helpers import T0, am_body, shipped_config, without_heartbeats
from tests.support.servers import running_server

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
FROM_NUMBER = "+15550109999"
ALICE, BOB = "+15550100001", "+15550100002"

PEOPLE = """
people:
  - id: alice
    name: Alice Oncall
    phone: "+15550100001"
    email: alice@example.com
  - id: bob
    name: Bob Lead
    phone: "+15550100002"
    email: bob@example.com
"""


def config_text(
    public_url: str,
    twilio_url: str,
    smtp_port: int,
    ca_file: Path,
    secrets: Path,
    chat_url: str,
    people: str = PEOPLE,
    extra_channels: str = "",
) -> str:
    return textwrap.dedent(
        f"""
        server:
          public_url: {public_url}
        engine:
          send_retry_base: 2s
          send_max_attempts: 8
        """
    ) + textwrap.dedent(people) + textwrap.dedent(
        f"""
        policies:
          critical:
            steps:
              - after: 0s
                targets: [{{person: alice}}, {{channel: incidents}}]
              - after: 30m
                targets: [{{person: bob}}]
        default_policy: critical
        channels:
          twilio:
            account_sid: {ACCOUNT_SID}
            auth_token: {{file: {secrets / "twilio_token"}}}
            from_number: "{FROM_NUMBER}"
            api_base_url: {twilio_url}
          email:
            host: 127.0.0.1
            port: {smtp_port}
            security: starttls
            username: escalator
            password: {{file: {secrets / "smtp_password"}}}
            from_address: escalator@example.com
            ca_file: {ca_file}
          chat:
            webhooks:
              incidents: {{file: {secrets / "chat_incidents"}}}
        """
    ) + textwrap.indent(textwrap.dedent(extra_channels), "  ")


class Recorder:
    """A Channel that records every delivery; `outcomes` scripts results per call."""

    def __init__(self, method: str = "console", outcomes: list[SendResult] | None = None):
        self.method = method
        self.outcomes = list(outcomes or [])
        self.sent: list[tuple[Delivery, Message]] = []
        self._lock = threading.Lock()

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        with self._lock:
            self.sent.append((delivery, message))
            if self.outcomes:
                return self.outcomes.pop(0)
        return SendResult("sent", "recorded", provider_id=f"rec-{delivery.id}")

    def pages(self) -> list[Delivery]:
        """Escalation pages only (they carry a level), not incident or shift notices."""
        return [d for d, _ in self.sent if d.level is not None]


class Rig:
    """A daemon on a FixedClock, driven by hand.

    With a `recorder`, every delivery method records instead of sending and `step()`
    returns what the level pages of that tick were; with real channels (`paging_rig`)
    the fakes receive them and `step()` returns an empty list.
    """

    def __init__(
        self,
        database_url: str,
        config: Config | None = None,
        start: datetime = T0,
        recorder: Recorder | None = None,
        methods: tuple[str, ...] = ("console",),
        clock: Any = None,
        heartbeats: bool = False,
        real_channels: bool = False,
    ):
        self.clock = clock or FixedClock(start)
        self.rec = None if real_channels else (recorder or Recorder())
        config = config or shipped_config(heartbeats)
        self.config: Config = config if heartbeats else without_heartbeats(config)
        self.daemon: Daemon = build_daemon(
            self.config,
            database_url,
            clock=self.clock,
            channels=None if self.rec is None else {m: self.rec for m in methods},
        )
        self.factory = self.daemon.factory
        self._closers: list[Callable[[], None]] = []
        self._seq = 0
        # The loopback fakes behind the real channels (set by `paging_rig`).
        self.public_url = ""
        self.twilio: FakeTwilio | None = None
        self.smtp: SmtpSink | None = None
        self.chat: FakeChat | None = None

    # driving ------------------------------------------------------------------------------

    @property
    def minute(self) -> float:
        return (self.clock.now() - T0).total_seconds() / 60

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)

    def fire(self, *alerts: dict[str, Any]) -> Any:
        """Post a webhook body through `ingest`, in one transaction, as the HTTP side does."""
        payload = AMWebhook.model_validate(am_body(*alerts))
        now = self.clock.now()
        with transaction(self.factory) as session:
            return ingest(
                session,
                payload,
                self.daemon.config,
                self.daemon.paging(session, now),
                self.daemon.policies,
                now,
            )

    def fire_new(
        self, count: int = 1, alertname: str = "HighErrorRate", **labels: str
    ) -> list[int]:
        """Alertmanager posts `count` new critical alerts (new instances) now; their ids."""
        alerts = []
        for _ in range(count):
            self._seq += 1
            alerts.append(
                {
                    "status": "firing",
                    "labels": {
                        "alertname": alertname,
                        "severity": "critical",
                        "instance": f"api-{self._seq}",
                        **labels,
                    },
                    "annotations": {
                        "summary": f"{alertname} on api-{self._seq}",
                        "runbook_url": "https://runbooks.example/high-error-rate",
                    },
                    "startsAt": self.clock.now().isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example/graph",
                    "fingerprint": f"{self._seq:016x}",
                }
            )
        return list(self.fire(*alerts).opened)

    def act(self, ids: list[int] | None, event: Any) -> list[Any]:
        from escalator.services.alerts import act, open_alert_ids

        now = self.clock.now()
        with transaction(self.factory) as session:
            targets = ids if ids is not None else open_alert_ids(session)
            return act(
                session, targets, event, self.daemon.paging(session, now), self.daemon.policies, now
            )

    def step(self) -> list[Delivery]:
        """One engine tick and one sender drain at the current time; the level pages recorded."""
        before = len(self.rec.sent) if self.rec else 0
        self.daemon.engine.tick()
        self.daemon.sender.drain()
        if self.rec is None:
            return []
        return [d for d, _ in self.rec.sent[before:] if d.level is not None]

    def advance(self, **delta: float) -> list[Delivery]:
        self.clock.advance(**delta)
        return self.step()

    def walk(self, until_minute: int, every: float = 1) -> dict[int, list[tuple[int, str]]]:
        """Step every `every` minutes up to `until_minute`: {minute: [(level, recipient)]}."""
        sent: dict[int, list[tuple[int, str]]] = {}
        while True:
            got = self.step()
            if got:
                minute = round(self.minute)
                sent.setdefault(minute, []).extend(sorted((d.level or 0, d.recipient) for d in got))
            if self.minute + every > until_minute + 1e-9:
                return sent
            self.clock.advance(minutes=every)

    # looking ------------------------------------------------------------------------------

    def alert(self, alert_id: int) -> AlertRow:
        with transaction(self.factory) as session:
            row = session.get(AlertRow, alert_id)
            assert row is not None
            return row

    def alerts(self) -> list[AlertRow]:
        with transaction(self.factory) as session:
            return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))

    def outbox(self, **where: Any) -> list[OutboxRow]:
        with transaction(self.factory) as session:
            query = select(OutboxRow).order_by(OutboxRow.id)
            for key, value in where.items():
                query = query.where(getattr(OutboxRow, key) == value)
            return list(session.scalars(query))

    def timeline(self, alert_id: int) -> list[TimelineRow]:
        with transaction(self.factory) as session:
            return list(
                session.scalars(
                    select(TimelineRow)
                    .where(TimelineRow.alert_id == alert_id)
                    .order_by(TimelineRow.id)
                )
            )

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self.daemon.stop()


def paging_rig(
    database_url: str,
    tmp_path: Path,
    port: int,
    smtp_port: int,
    fail_rate: float = 0.0,
    people: str = PEOPLE,
    extra_channels: str = "",
) -> Rig:
    """A Rig whose channels are the real ones, pointed at loopback fakes (`rig.twilio`,
    `rig.smtp`, `rig.chat`), with the HTTP app served on `port` for Twilio's callbacks."""
    public_url = f"http://127.0.0.1:{port}"
    twilio = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, public_url, fail_rate).start()
    smtp = SmtpSink(tmp_path, smtp_port).start()
    chat = FakeChat().start()
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "twilio_token").write_text(AUTH_TOKEN + "\n")
    (secrets / "smtp_password").write_text(smtp.password)
    (secrets / "chat_incidents").write_text(chat.url("/hooks/incidents"))
    text = config_text(
        public_url,
        twilio.base_url,
        smtp.port,
        smtp.cert,
        secrets,
        chat.url("/hooks/incidents"),
        people,
        extra_channels,
    )
    rig = Rig(database_url, parse_config(text, "paging-test.yaml"), real_channels=True)
    rig.public_url, rig.twilio, rig.smtp, rig.chat = public_url, twilio, smtp, chat
    served = ExitStack()
    rig._closers += [twilio.stop, smtp.stop, chat.stop, served.close]
    try:
        served.enter_context(running_server(create_app(rig.daemon, run_engine=False), port))
    except BaseException:
        rig.close()
        raise
    return rig
