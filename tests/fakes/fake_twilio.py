"""A loopback fake of the Twilio REST API, and of Twilio's side of the webhooks.

The real `twilio` SDK talks to it when `client.api.base_url` (escalator's test-only
`channels.twilio.api_base_url`) points here. It records messages and calls, answers like
Twilio (201 with a resource; 4xx with `{"code", "message", "status"}`), fails on demand
(a fraction of requests with 5xx, or a Twilio error code for a number), and plays the
phone: it replies to an SMS, answers a call and presses a key, and fires status callbacks,
each a POST to escalator signed with `X-Twilio-Signature` exactly as Twilio signs.

Runnable on its own for manual tries and the end-to-end test's subprocesses:
`python -m tests.fakes.fake_twilio --port 8099 --account-sid AC... --auth-token T`.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
from twilio.request_validator import RequestValidator

_RESOURCE = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC\w+)/(?P<kind>Messages|Calls)\.json$")


@dataclass
class Sent:
    """One message or call the fake accepted."""

    sid: str
    kind: str  # "sms" or "call"
    to: str
    from_: str
    params: dict[str, Any]
    body: str = ""  # SMS text
    url: str = ""  # call TwiML URL
    twiml: str = ""  # inline call TwiML
    status_callback: str = ""
    statuses: list[str] = field(default_factory=list)
    accepted_at: float = 0.0  # time.time() when the fake answered 201


class FakeTwilio:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        escalator_url: str | None = None,
        fail_rate: float = 0.0,
        seed: int = 3,
    ):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.escalator_url = escalator_url  # where the number's inbound SMS webhook points
        self.fail_rate = fail_rate
        self.fail_codes: dict[str, int] = {}  # to-number -> Twilio error code (permanent)
        # Latency knob: every REST request is answered this many seconds late (concurrent
        # requests wait in parallel, like a slow provider).
        self.delay = 0.0
        self.sent: list[Sent] = []
        self.requests = 0
        self.injected_failures = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._validator = RequestValidator(auth_token)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=30)

    # server -----------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                if fake.delay:
                    time.sleep(fake.delay)
                code, payload = fake._handle(self.path, self.headers.get("authorization"), body)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._http.close()

    def __enter__(self) -> FakeTwilio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _handle(self, path: str, auth: str | None, body: str) -> tuple[int, dict[str, Any]]:
        match = _RESOURCE.match(path.split("?")[0])
        if match is None:
            return 404, _error(20404, "The requested resource was not found", 404)
        if match["sid"] != self.account_sid or not self._authorized(auth):
            return 401, _error(20003, "Authenticate", 401)
        params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(body).items()}
        with self._lock:
            self.requests += 1
            if self.fail_rate and self._random.random() < self.fail_rate:
                self.injected_failures += 1
                return 503, _error(20500, "Service unavailable (injected)", 503)
            to = str(params.get("To", ""))
            if to in self.fail_codes:
                code = self.fail_codes[to]
                return 400, _error(code, f"Twilio error {code} (injected) for {to}", 400)
            kind = "sms" if match["kind"] == "Messages" else "call"
            sid = ("SM" if kind == "sms" else "CA") + uuid.uuid4().hex
            sent = Sent(
                sid=sid,
                kind=kind,
                to=to,
                from_=str(params.get("From", "")),
                params=params,
                body=str(params.get("Body", "")),
                url=str(params.get("Url", "")),
                twiml=str(params.get("Twiml", "")),
                status_callback=str(params.get("StatusCallback", "")),
                accepted_at=time.time(),
            )
            self.sent.append(sent)
        resource = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": sent.to,
            "from": sent.from_,
            "status": "queued",
            "direction": "outbound-api",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "uri": f"{path.split('.json')[0]}/{sid}.json",
        }
        if kind == "sms":
            resource.update({"body": sent.body, "num_segments": "1"})
        return 201, resource

    # what was sent ------------------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.kind == "sms" and (to is None or s.to == to)]

    def calls(self, to: str | None = None) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.kind == "call" and (to is None or s.to == to)]

    def find(self, sid: str) -> Sent:
        with self._lock:
            return next(s for s in self.sent if s.sid == sid)

    # Twilio's side of the webhooks -------------------------------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        return str(self._validator.compute_signature(url, dict(params)))

    def post_signed(
        self, url: str, params: Mapping[str, str], signature: str | None = None
    ) -> httpx.Response:
        """POST form `params` to `url` as Twilio does (override `signature` to forge one)."""
        sig = self.sign(url, params) if signature is None else signature
        return self._http.post(url, data=dict(params), headers={"X-Twilio-Signature": sig})

    def reply_sms(self, from_: str, body: str, to: str | None = None) -> httpx.Response:
        """A person texts the escalator number (its inbound webhook: /twilio/sms)."""
        assert self.escalator_url, "set escalator_url first"
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to or "",
            "Body": body,
            "NumMedia": "0",
        }
        return self.post_signed(f"{self.escalator_url.rstrip('/')}/twilio/sms", params)

    def answer_call(self, call: Sent, digits: str | None) -> list[str]:
        """Answer `call`, listen to its TwiML, press `digits` at the first <Gather>.

        Returns the TwiML documents fetched (the call's, then the <Gather> action's).
        """
        base = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "Called": call.to,
            "Direction": "outbound-api",
            "CallStatus": "in-progress",
        }
        first = self.post_signed(call.url, base)
        first.raise_for_status()
        documents = [first.text]
        if digits is None:
            return documents
        gather = ET.fromstring(first.text).find("Gather")
        assert gather is not None, f"no <Gather> in {first.text}"
        action = gather.get("action", "")
        second = self.post_signed(action, {**base, "Digits": digits})
        second.raise_for_status()
        documents.append(second.text)
        return documents

    def fire_status(self, sid: str, status: str, error_code: int | None = None) -> httpx.Response:
        """Report `status` for a message or call to its StatusCallback, as Twilio does."""
        sent = self.find(sid)
        sent.statuses.append(status)
        if sent.kind == "sms":
            params = {"MessageSid": sid, "MessageStatus": status, "SmsStatus": status}
        else:
            params = {"CallSid": sid, "CallStatus": status}
        params.update({"AccountSid": self.account_sid, "From": sent.from_, "To": sent.to})
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        assert sent.status_callback, f"{sid} has no StatusCallback"
        return self.post_signed(sent.status_callback, params)


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeTwilio(args.account_sid, args.auth_token, fail_rate=args.fail_rate)
    fake.start(args.port)
    print(f"fake Twilio API at {fake.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
