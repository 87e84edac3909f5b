"""Email over SMTP with STARTTLS (or implicit TLS) and authentication, via smtplib.

SMTP says itself which failures are worth retrying: a 4xx reply is transient (greylisting,
a full queue), a 5xx one is permanent (no such mailbox, authentication refused), so a 5xx
moves the page to the person's next contact method at once. A dropped connection or a
timeout is retried.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from escalator.config import EmailChannel as EmailSettings
from escalator.notify.channels.base import Delivery, Message, SendResult
from escalator.text import one_line


def _by_code(code: int, what: str) -> SendResult:
    return SendResult("retry" if 400 <= code < 500 else "failed", f"smtp {code}: {what}")


class EmailChannel:
    method = "email"

    def __init__(self, settings: EmailSettings, connect: float | None = None):
        self._settings = settings
        self._connect = connect
        self._password = settings.password.resolve() if settings.password else None
        if settings.username and self._password is None:
            where = settings.password.describe() if settings.password else "no password set"
            raise ValueError(f"channels.email.password: {where} has no value")

    def _tls_context(self) -> ssl.SSLContext:
        ca = self._settings.ca_file
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def compose(self, delivery: Delivery, message: Message) -> EmailMessage:
        mail = EmailMessage()
        # Subject carries severity and alert name: the title is "[CRITICAL] #42 Name: ...".
        # One line whatever the alert says: a line break in a header is refused (ValueError)
        # by the email package, and the page would be lost on this method.
        mail["Subject"] = one_line(message.title)[:200]
        mail["From"] = self._settings.from_address
        mail["To"] = delivery.address or ""
        mail["Date"] = formatdate(usegmt=True)
        domain = self._settings.from_address.rpartition("@")[2] or "escalator"
        mail["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain)
        if message.severity:
            mail["X-Escalator-Severity"] = message.severity
        if message.alert_ids:
            mail["X-Escalator-Alerts"] = " ".join(str(i) for i in message.alert_ids)
        mail.set_content(f"{message.body}\n\n{message.ack_hint}\n\n-- \nescalator\n")
        return mail

    def send(self, delivery: Delivery, message: Message) -> SendResult:
        if not delivery.address:
            return SendResult("failed", "no email address")
        s = self._settings
        mail = self.compose(delivery, message)
        timeout = s.timeout.total_seconds()
        # smtplib has one timeout for connecting and for every reply; connect with the
        # shorter one, then allow `timeout` per reply (the lane's deadline bounds the whole).
        connect = min(self._connect or timeout, timeout)
        try:
            if s.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=connect, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=connect)
            if smtp.sock is not None:
                smtp.sock.settimeout(timeout)
            smtp.timeout = timeout
            with smtp:
                smtp.ehlo()
                if s.security == "starttls":
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if s.username:
                    assert self._password is not None
                    smtp.login(s.username, self._password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _by_code(code, text.decode(errors="replace"))
        except smtplib.SMTPResponseException as exc:
            return _by_code(exc.smtp_code, exc.smtp_error.decode(errors="replace"))  # type: ignore[union-attr]  # bytes at run time
        except smtplib.SMTPNotSupportedError as exc:
            # e.g. AUTH or STARTTLS not offered: a configuration problem no retry will fix.
            return SendResult("failed", f"smtp: {exc}")
        except (smtplib.SMTPException, OSError) as exc:
            return SendResult("retry", f"smtp {type(exc).__name__}: {exc}")
        if refused:
            code, text = next(iter(refused.values()))
            return _by_code(code, text.decode(errors="replace"))
        return SendResult("sent", f"accepted by {s.host}", str(mail["Message-ID"]))
