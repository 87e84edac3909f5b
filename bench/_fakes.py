"""Slow and hung providers for bench/delivery.py, built on the test fakes.

New classes in their own file rather than knobs on tests/fakes: the fakes there belong to
the tests (and to whoever reworks the sender), and a benchmark needs only two things the
tests do not: a provider that takes a fixed time per request, and the moment each send was
answered, stamped on the bench's own clock (`time.perf_counter`), so "from the webhook's
2xx to the last send" is one subtraction on one clock.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tests.fakes.fake_twilio as fake_twilio_module
from tests.fakes.fake_twilio import FakeTwilio


class _Server(ThreadingHTTPServer):
    # A sender with many lanes (or three replicas) may open more connections at once than
    # the default backlog of 5; a refused connection would look like a provider outage.
    request_queue_size = 128
    daemon_threads = True


class SlowTwilio(FakeTwilio):
    """The Twilio fake, answering each REST call after `delay` seconds.

    The delay (FakeTwilio's own knob, slept by each request's handler thread outside the
    fake's lock) overlaps for concurrent requests as it does at Twilio: a sender that sends
    in parallel gains, one that sends in turn does not.
    `stamps` holds the bench clock at each accepted SMS or call (just before the answer).
    """

    def __init__(self, *args: Any, delay: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.delay = delay
        self.stamps: list[float] = []

    def start(self, port: int = 0) -> SlowTwilio:
        # FakeTwilio.start builds a plain ThreadingHTTPServer (backlog 5); swap in the
        # deep-backlog one for the call without touching the test fake's file.
        plain = fake_twilio_module.ThreadingHTTPServer
        fake_twilio_module.ThreadingHTTPServer = _Server  # type: ignore[misc]
        try:
            super().start(port)
        finally:
            fake_twilio_module.ThreadingHTTPServer = plain  # type: ignore[misc]
        return self

    def _handle(self, path: str, auth: str | None, body: str) -> tuple[int, dict[str, Any]]:
        # The delay itself: FakeTwilio.delay, slept by its request handler before this.
        code, payload = super()._handle(path, auth, body)
        if code == 201:
            with self._lock:
                self.stamps.append(time.perf_counter())
        return code, payload


class HungSmtp:
    """A TCP server that accepts every connection and never says a word.

    An SMTP client waits for the 220 greeting until its own timeout: the worst kind of
    relay outage, slower than a refused connection. Connections are held open until stop().
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        for conn in self._held:
            conn.close()


class SlowReceiver:
    """A webhook/chat receiver that takes `delay` seconds per POST, then answers 200.

    Counts POSTs by path (one path per channel name), so duplicates are deliveries beyond
    one per page; `stamps` holds the bench clock at each answer.
    """

    def __init__(self, delay: float = 1.5) -> None:
        self.delay = delay
        self.posts: Counter[str] = Counter()
        self.stamps: list[float] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.posts[self.path] += 1
                    receiver.stamps.append(time.perf_counter())
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def total(self) -> int:
        with self._lock:
            return sum(self.posts.values())

    def last(self) -> float:
        with self._lock:
            return max(self.stamps, default=float("nan"))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
