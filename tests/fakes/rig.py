"""A paging test rig: escalator's real daemon (FixedClock, driven by hand) with the real
channels from its YAML config, pointed at the loopback fakes, and its real HTTP app on a
uvicorn thread so the fakes can call the Twilio webhooks.

`step()` runs one engine tick and drains the sender, as the Runner would.
"""

from __future__ import annotations

import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select

from escalator.config import Config, parse_config
from escalator.daemon import Daemon, build_daemon
from escalator.engine.runner import wait_until
from escalator.ingest.alertmanager import AMWebhook, ingest
from escalator.store.clock import FixedClock
from escalator.store.db import transaction
from escalator.store.tables import AlertRow, OutboxRow, TimelineRow
from escalator.web.app import create_app
from tests.fakes.fake_chat import FakeChat
from tests.fakes.fake_twilio import FakeTwilio
from tests.fakes.smtp_sink import SmtpSink

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
FROM_NUMBER = "+15550109999"
ALICE, BOB = "+15550100001", "+15550100002"
T0 = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)

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


class PagingRig:
    def __init__(
        self,
        database_url: str,
        tmp_path: Path,
        port: int,
        smtp_port: int,
        fail_rate: float = 0.0,
        people: str = PEOPLE,
        extra_channels: str = "",
    ):
        self.clock = FixedClock(T0)
        self.public_url = f"http://127.0.0.1:{port}"
        self.twilio = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, self.public_url, fail_rate).start()
        self.smtp = SmtpSink(tmp_path, smtp_port).start()
        self.chat = FakeChat().start()
        secrets = tmp_path / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "twilio_token").write_text(AUTH_TOKEN + "\n")
        (secrets / "smtp_password").write_text(self.smtp.password)
        (secrets / "chat_incidents").write_text(self.chat.url("/hooks/incidents"))
        text = config_text(
            self.public_url,
            self.twilio.base_url,
            self.smtp.port,
            self.smtp.cert,
            secrets,
            self.chat.url("/hooks/incidents"),
            people,
            extra_channels,
        )
        self.config: Config = parse_config(text, "paging-test.yaml")
        self.daemon: Daemon = build_daemon(self.config, database_url, clock=self.clock)
        self.factory = self.daemon.factory
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.daemon, run_engine=False),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="on",
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        assert wait_until(lambda: self._server.started, timeout=30), "uvicorn did not start"
        self._seq = 0

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.twilio.stop()
        self.smtp.stop()
        self.chat.stop()
        self.daemon.db.dispose()

    # driving ------------------------------------------------------------------------------

    def fire(self, count: int = 1, alertname: str = "HighErrorRate", **labels: str) -> list[int]:
        """Alertmanager posts `count` new firing alerts now; returns their ids."""
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
        body: dict[str, Any] = {
            "version": "4",
            "status": "firing",
            "receiver": "escalator",
            "alerts": alerts,
        }
        now = self.clock.now()
        with transaction(self.factory) as session:
            result = ingest(
                session,
                AMWebhook.model_validate(body),
                self.config,
                self.daemon.paging(session, now),
                self.daemon.policies,
                now,
            )
        return list(result.opened)

    def step(self) -> int:
        self.daemon.engine.tick()
        return self.daemon.sender.drain()

    def advance(self, **delta: float) -> int:
        self.clock.advance(**delta)
        return self.step()

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

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)
