"""Delivery lanes: one per channel, each with its own bounded pool and a hard deadline.

A lane has a dispatcher thread that claims due pages of its method only when it has room
(so a page is owned by this process only while a slot is about to send it, plus a small
prefetch for the console), and `pool` sender threads. Each attempt runs in its own daemon
thread and the sender thread waits at most `deadline` for it: a call that hangs despite the
client's timeouts frees the slot as a `retry` (outcome `deadline`) and is abandoned. A hung
SMTP relay therefore fills the email lane and nothing else; SMS, voice, chat and the console
go on at their own pace.

Every finished attempt goes to the process's single `Recorder` thread, which commits each
completed page promptly (whatever is waiting at that moment, in one transaction: group
commit). The console's sender thread waits for its page's commit before printing the next
one, so a crash repeats at most one console page; other lanes hand the record over and take
their next page at once (a provider round trip is far longer than a commit, so the pages
between "accepted" and "recorded" stay about the lane's pool).
One recorder also means SQLite's single write lock is not fought over by every lane.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from escalator.notify.channels.base import SendResult
from escalator.notify.metrics import DeliveryMetrics

if TYPE_CHECKING:
    from escalator.notify.sender import Bundle

log = logging.getLogger("escalator.sender")


@dataclass
class Attempt:
    """One finished send waiting to be recorded."""

    bundle: Bundle
    result: SendResult
    done: threading.Event = field(default_factory=threading.Event)


def bounded(fn: Callable[[], SendResult], deadline: float, name: str) -> tuple[SendResult, bool]:
    """Run `fn` in a daemon thread and wait at most `deadline` seconds.

    Returns (result, deadline_passed). A call still running at the deadline is left to end
    on its own (its client timeout); whatever it returns is ignored."""
    box: list[SendResult] = []
    finished = threading.Event()

    def run() -> None:
        try:
            box.append(fn())
        except Exception as exc:  # a channel bug must not kill the lane
            log.exception("channel %s raised", name)
            box.append(SendResult("retry", f"{type(exc).__name__}: {exc}"))
        finally:
            finished.set()

    threading.Thread(target=run, name=f"send-{name}", daemon=True).start()
    if not finished.wait(deadline):
        return SendResult("retry", f"no answer within the {deadline:g}s deadline"), True
    return box[0], False


class Recorder:
    """The one thread that records finished attempts (group commit, fenced per row)."""

    def __init__(self, record: Callable[[Sequence[Attempt]], None]):
        self._record = record
        self._queue: queue.Queue[Attempt] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="delivery-recorder", daemon=True)
        self._thread.start()

    def submit(self, attempt: Attempt, wait: float | None = None) -> bool:
        """Queue `attempt` and wait until it is committed (or `wait` seconds pass)."""
        self._queue.put(attempt)
        return attempt.done.wait(wait)

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[Attempt]) -> None:
        try:
            self._record(batch)
        except Exception:
            log.exception("recording %d sends together failed; recording one by one", len(batch))
            for attempt in batch:
                self._commit_one(attempt)
            return
        for attempt in batch:
            attempt.done.set()

    def _commit_one(self, attempt: Attempt) -> None:
        delay = 0.2
        while True:
            try:
                self._record([attempt])
                break
            except Exception as exc:
                if self._stop.is_set():
                    log.error("giving up recording outbox %s: %s", attempt.bundle.row_ids, exc)
                    break
                log.warning("recording outbox %s failed, retrying: %s", attempt.bundle.row_ids, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        attempt.done.set()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class LaneHost:
    """What a lane needs from the sender (escalator.notify.sender.Sender implements it)."""

    def claim_for(self, method: str, limit: int) -> list[Bundle]:
        raise NotImplementedError

    def send_now(self, bundle: Bundle) -> SendResult:
        raise NotImplementedError

    def release(self, bundles: Sequence[Bundle], started: bool) -> None:
        raise NotImplementedError


class Lane:
    """One channel's dispatcher and its pool of sender threads."""

    def __init__(
        self,
        method: str,
        host: LaneHost,
        recorder: Recorder,
        metrics: DeliveryMetrics,
        pool: int,
        deadline: float,
        tick: float,
        prefetch: int = 0,
        wait_for_record: bool = False,
    ):
        self.method = method
        self.pool = pool
        self.deadline = deadline
        self._host = host
        self._recorder = recorder
        self._metrics = metrics
        self._tick = tick
        self._prefetch = prefetch
        self._wait_for_record = wait_for_record
        self._cond = threading.Condition()
        self._queue: deque[Bundle] = deque()
        self._running: set[int] = set()  # lead row ids of bundles being sent
        self._bundles: dict[int, Bundle] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_cycle: float | None = None  # time.time() of the last completed claim cycle

    # life ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self.last_cycle = time.time()
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"lane-{self.method}", daemon=True)
        ]
        self._threads += [
            threading.Thread(target=self._work, name=f"lane-{self.method}-{i}", daemon=True)
            for i in range(self.pool)
        ]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._running)

    def stop_claiming(self) -> list[Bundle]:
        """Stop taking pages; returns the claimed pages no thread has started (to release)."""
        with self._cond:
            self._stop.set()
            left = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._wake.set()
        return left

    def wait_idle(self, until: float) -> list[Bundle]:
        """Wait (until the monotonic time `until`) for sends in flight to finish; returns
        those still running then."""
        with self._cond:
            while self._running and time.monotonic() < until:
                self._cond.wait(max(0.0, min(0.1, until - time.monotonic())))
            return [self._bundles[i] for i in self._running]

    # threads ------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                room = self.pool + self._prefetch - len(self._queue) - len(self._running)
            claimed = 0
            try:
                if room > 0:
                    began = time.monotonic()
                    bundles = self._host.claim_for(self.method, room)
                    claimed = len(bundles)
                    if claimed:
                        took = time.monotonic() - began
                        log.debug("lane %s: claimed %d in %.3fs", self.method, claimed, took)
                    with self._cond:
                        if self._stop.is_set():
                            self._host.release(bundles, started=False)
                            return
                        self._queue.extend(bundles)
                        self._cond.notify_all()
                self.last_cycle = time.time()
                self._metrics.lane_cycle.labels(self.method).set(self.last_cycle)
            except Exception as exc:  # the store is down: log, retry next tick
                log.error("lane %s: claim failed, will retry: %s", self.method, exc)
            if claimed and claimed >= room:
                continue  # there may be more due: claim as soon as there is room
            self._wake.wait(self._tick)
            self._wake.clear()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if not self._queue:
                    return
                bundle = self._queue.popleft()
                lead = bundle.delivery.id
                self._running.add(lead)
                self._bundles[lead] = bundle
                self._metrics.in_flight.labels(self.method).set(len(self._running))
            try:
                self._attempt(bundle)
            finally:
                with self._cond:
                    self._running.discard(lead)
                    self._bundles.pop(lead, None)
                    self._metrics.in_flight.labels(self.method).set(len(self._running))
                    self._cond.notify_all()
                self._wake.set()  # a slot is free: claim the next page now

    def _attempt(self, bundle: Bundle) -> None:
        started = time.monotonic()
        result, late = bounded(lambda: self._host.send_now(bundle), self.deadline, self.method)
        seconds = time.monotonic() - started
        self._metrics.attempt_seconds.labels(self.method).observe(seconds)
        self._metrics.attempts.labels(self.method, "deadline" if late else result.outcome).inc()
        if late:
            log.warning(
                "%s: outbox %s hit the deadline; retrying later", self.method, bundle.row_ids
            )
        attempt = Attempt(bundle, result)
        if self._wait_for_record:
            self._recorder.submit(attempt)
        else:
            # The slot is free for the next page while the recorder commits this one: the
            # row stays ours (`sending`) until then, so nobody else sends it meanwhile.
            self._recorder.submit(attempt, wait=0)
