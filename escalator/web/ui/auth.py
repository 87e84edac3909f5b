"""Who is looking at the console, and whether a form post really comes from it.

Three ways in, checked in this order on every request:

1. An authenticating proxy (oauth2-proxy and the like): the configured header (default
   `X-Forwarded-Email`) is believed only on connections from `server.console.
   trusted_proxies`, and names a person of the roster by email. The same header from any
   other address is refused outright: it means someone is trying to walk around the proxy.
2. A session cookie, opened at /ui/login with the person's token (`escalator ui-token`).
   It is signed with a key shared through the database and carries a fingerprint of the
   token, so a new token (or `--revoke`) ends the sessions of the old one.
3. Loopback with no proxy configured and no token set anywhere: open, as for the API
   without a token, as "local operator". To act, the operator says which person they are
   (a signed cookie too), because every action is recorded against a roster person.

CSRF: every form carries an HMAC of a random per-browser cookie (double submit, signed
so a cookie planted from a sibling domain is useless); posts from another site (by
`Sec-Fetch-Site` or `Origin`) are refused before that. Nothing changes state on a GET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from escalator.config import Config, ConsoleAuth
from escalator.web.ui import logins

SESSION_COOKIE = "escalator_session"
CSRF_COOKIE = "escalator_csrf"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request; `person` None: the local operator has not said who."""

    person: str | None
    how: Literal["proxy", "token", "local"]
    display: str

    @property
    def can_act(self) -> bool:
        return self.person is not None


class Denied(Exception):
    """A request the console refuses; `status` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NeedsLogin(Exception):
    """No proxy identity and no valid session, and the console is not open: log in."""


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _ip(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Guard:
    """The console's authentication and CSRF rules for one daemon."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings: ConsoleAuth = config.server.console
        self._key: bytes | None = None  # the shared key never changes once made

    # Keys and signatures -----------------------------------------------------------------

    def key(self, session: Session, now: datetime) -> bytes:
        if self._key is None:
            self._key = logins.signing_key(session, now)
        return self._key

    def _sign(self, key: bytes, purpose: str, payload: str) -> str:
        return hmac.new(key, f"{purpose}:{payload}".encode(), hashlib.sha256).hexdigest()

    # Who is it ---------------------------------------------------------------------------

    def from_trusted_proxy(self, request: Request) -> bool:
        address = _ip(_peer(request))
        return address is not None and any(address in net for net in self.settings.trusted_proxies)

    def local_open(self, request: Request, session: Session) -> bool:
        """Loopback, no proxy configured, nobody has a token: the console is open."""
        return (
            not self.settings.trusted_proxies
            and is_loopback(_peer(request))
            and not logins.any_tokens(session)
        )

    def viewer(self, request: Request, session: Session, now: datetime) -> Viewer:
        """The viewer, or Denied / NeedsLogin."""
        header = request.headers.get(self.settings.header)
        if self.from_trusted_proxy(request):
            if not header:
                raise Denied(401, f"the proxy sent no {self.settings.header} header")
            person = self.person_by_email(header)
            if person is None:
                raise Denied(403, f"{header} is not the email of anyone in the roster")
            return Viewer(person, "proxy", self._display(person))
        if header is not None:
            raise Denied(
                403,
                f"{self.settings.header} is only accepted from the configured proxy "
                f"addresses (server.console.trusted_proxies)",
            )
        found = self._session_person(request, session, now)
        if found is not None:
            person, kind = found
            if kind == "token" or self.local_open(request, session):
                return Viewer(
                    person, "token" if kind == "token" else "local", self._display(person)
                )
        if self.local_open(request, session):
            return Viewer(None, "local", "local operator")
        raise NeedsLogin()

    def person_by_email(self, email: str) -> str | None:
        wanted = email.strip().lower()
        for person in self.config.people:
            if person.email and person.email.lower() == wanted:
                return person.id
        return None

    def _display(self, person: str) -> str:
        found = self.config.person(person)
        return found.display if found else person

    # Sessions ----------------------------------------------------------------------------

    def session_cookie(
        self, session: Session, person: str, kind: Literal["token", "local"], now: datetime
    ) -> str:
        fingerprint = ""
        if kind == "token":
            stored = logins.token_hash(session, person)
            assert stored is not None
            fingerprint = stored[:16]
        expires = int((now + self.settings.session_lifetime).timestamp())
        payload = _b64(
            json.dumps({"p": person, "k": kind, "e": expires, "t": fingerprint}).encode()
        )
        return f"{payload}.{self._sign(self.key(session, now), 'session', payload)}"

    def _session_person(
        self, request: Request, session: Session, now: datetime
    ) -> tuple[str, str] | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        expected = self._sign(self.key(session, now), "session", payload)
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            data = json.loads(_unb64(payload))
            person, kind, expires = str(data["p"]), str(data["k"]), int(data["e"])
            fingerprint = str(data["t"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires <= now.timestamp() or self.config.person(person) is None:
            return None
        if kind == "token":
            stored = logins.token_hash(session, person)
            if stored is None or not hmac.compare_digest(stored[:16], fingerprint):
                return None  # the token was replaced or revoked: so is the session
        elif kind != "local":
            return None
        return person, kind

    def secure_cookies(self, request: Request) -> bool:
        """Secure unless the browser talks to us over loopback (plain http there)."""
        return not is_loopback(_peer(request))

    def set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies(request),
            path="/",
            max_age=int(self.settings.session_lifetime.total_seconds()),
        )

    # CSRF --------------------------------------------------------------------------------

    def csrf_nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF nonce, and whether it is new (then set it on the response)."""
        nonce = request.cookies.get(CSRF_COOKIE)
        if nonce and 16 <= len(nonce) <= 100:
            return nonce, False
        return secrets.token_urlsafe(24), True

    def csrf_token(self, session: Session, nonce: str, now: datetime) -> str:
        return self._sign(self.key(session, now), "csrf", nonce)

    def check_post(
        self, request: Request, form: Mapping[str, str], session: Session, now: datetime
    ) -> None:
        """Refuse a post from another site or without this browser's CSRF token."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Denied(403, f"cross-site form post refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            host = request.headers.get("host", "")
            if urlsplit(origin).netloc.lower() != host.lower():
                raise Denied(403, "form post from another origin refused")
        nonce = request.cookies.get(CSRF_COOKIE)
        given = form.get("csrf", "")
        if not nonce or not given:
            raise Denied(403, "CSRF token missing: reload the page and try again")
        if not hmac.compare_digest(given, self.csrf_token(session, nonce, now)):
            raise Denied(403, "CSRF token wrong: reload the page and try again")
