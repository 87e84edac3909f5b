"""How `serve` runs uvicorn: h11 with a deadline on request headers, and bounded resources.

uvicorn times out idle keep-alive connections but not a request whose headers never end:
a client that sends half a request line and stops holds its connection (and a slot of
`limit_concurrency`) for ever, and a few hundred such clients starve the webhook. The
protocol below closes a connection whose headers are not complete within
`server.header_timeout` of its first byte (or of the previous response); the edge guard
(web/limits.py) puts the same kind of deadline on the body.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from escalator.config import Server

# What one h11 connection may buffer before its headers are complete (uvicorn's default is
# 16 KiB too; stated here so it is a decision, not an accident).
MAX_HEADER_BYTES = 16 * 1024
# Keep-alive: long enough for Alertmanager's next post to reuse the connection.
KEEP_ALIVE_SECONDS = 5
# Connections plus in-flight requests beyond this are answered 503 at once (uvicorn).
MAX_CONCURRENCY = 1000


def header_deadline_protocol(seconds: float) -> type[H11Protocol]:
    """An H11Protocol that drops a connection still waiting for complete headers after
    `seconds` (counted from the connection, or from the end of the previous response)."""

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # headers incomplete: nothing to answer to

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in; the guard times the body

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request's headers get the same deadline

    return HeaderDeadline


def uvicorn_options(server: Server) -> dict[str, Any]:
    """The keyword arguments `serve` passes to uvicorn.run for these settings."""
    return {
        "http": header_deadline_protocol(server.header_timeout.total_seconds()),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": MAX_CONCURRENCY,
    }


def settle_heap() -> None:
    """Tune the cyclic collector for a daemon whose heap is mostly its imports and config.

    Measured on repeated 100-alert Alertmanager posts: with the defaults the collector ran
    once per post and took 16% of the time, most of it re-walking the ~150,000 objects
    made at start-up, which never become garbage. Frozen, they are skipped (3.8%); with a
    first generation of 10,000, a post's own short-lived objects are freed by reference
    counting before a collection is due (0%). Cyclic garbage is still collected, in
    batches of at most 10,000 new objects."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(10_000, middle, oldest)
