"""A Slack-compatible incoming-webhook receiver (also used for the generic JSON webhook).

Records each JSON body by path; `fail_next` holds HTTP statuses to answer, in order,
before answering 200 again. `delay` answers every request that many seconds late (a slow
receiver); `times` keeps when each accepted post was answered.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeChat:
    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.fail_next: list[int] = []
        self.delay = 0.0
        self.times: list[float] = []
        self.started: list[float] = []  # time.time() each request arrived (before `delay`)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeChat:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with fake._lock:
                    fake.started.append(time.time())
                if fake.delay:
                    time.sleep(fake.delay)
                with fake._lock:
                    code = fake.fail_next.pop(0) if fake.fail_next else 200
                    if code == 200:
                        fake.posts.append((self.path, json.loads(body)))
                        fake.times.append(time.time())
                reply = b"ok" if code == 200 else b"error"
                try:
                    self.send_response(code)
                    self.send_header("content-length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender was killed mid-request (the crash tests): taken anyway

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def to(self, path: str) -> list[Any]:
        with self._lock:
            return [body for p, body in self.posts if p == path]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
