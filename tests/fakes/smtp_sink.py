"""An aiosmtpd SMTP sink with STARTTLS (a self-signed certificate made here) and AUTH.

Records every accepted message; `fail_rcpt[address] = (code, text)` refuses a recipient
(4xx transient, 5xx permanent) so the client's handling of both can be tested.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files in `folder`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        refused = self.sink.fail_rcpt.get(address)
        if refused is not None:
            return f"{refused[0]} {refused[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            self.sink.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
            )
            self.sink.tls_used.append(session.ssl is not None)
        return "250 Message accepted"


class SmtpSink:
    def __init__(
        self, folder: Path, port: int, username: str = "escalator", password: str = "s3cret"
    ):
        self.cert, self.key = self_signed_cert(folder)
        self.username, self.password = username, password
        self.messages: list[tuple[str, list[str], Message]] = []
        self.tls_used: list[bool] = []
        self.fail_rcpt: dict[str, tuple[int, str]] = {}
        self.lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=self._authenticate,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for _f, rcpts, m in self.messages if address in rcpts]


class HungRelay:
    """An SMTP relay that accepts TCP connections and never says a word (no 220 greeting):
    the hung provider of the delivery-lane tests. Connections are held until `stop()`."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self._held: list[Any] = []
        self._stopped = False
        self.connections = 0

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> HungRelay:
        def accept() -> None:
            while not self._stopped:
                try:
                    conn, _ = self._socket.accept()
                except OSError:
                    return
                self.connections += 1
                self._held.append(conn)

        threading.Thread(target=accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._socket.close()
        for conn in self._held:
            conn.close()
