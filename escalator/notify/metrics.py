"""Delivery metrics, owned by the daemon (one instance per Daemon, no module-level metrics).

The names are a contract: Prometheus rules are written against them.

- `escalator_delivery_attempts_total{channel,outcome}` outcome: sent | retry | failed | deadline
- `escalator_delivery_attempt_seconds{channel}` how long one attempt took
- `escalator_delivery_in_flight{channel}` sends running now
- `escalator_delivery_queue_depth{channel}` pending rows that are due (read at scrape time)
- `escalator_delivery_oldest_due_seconds{channel}` age of the oldest due pending page, 0 if none
- `escalator_delivery_lane_last_cycle_timestamp_seconds{channel}` when the lane last looked
- `escalator_engine_last_tick_timestamp_seconds` when the engine last finished a tick
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 45.0, 90.0)


class DeliveryMetrics(Collector):
    """All delivery and engine-progress metrics, registered in the daemon's `registry`
    (escalator.metrics) as one collector; None registers nowhere (unit tests)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.attempts = Counter(
            "escalator_delivery_attempts_total",
            "Delivery attempts by channel and outcome (sent, retry, failed, deadline)",
            ["channel", "outcome"],
            registry=None,
        )
        self.attempt_seconds = Histogram(
            "escalator_delivery_attempt_seconds",
            "Duration of one delivery attempt",
            ["channel"],
            buckets=_BUCKETS,
            registry=None,
        )
        self.in_flight = Gauge(
            "escalator_delivery_in_flight", "Sends in flight", ["channel"], registry=None
        )
        self.queue_depth = Gauge(
            "escalator_delivery_queue_depth", "Due pending pages", ["channel"], registry=None
        )
        self.oldest_due = Gauge(
            "escalator_delivery_oldest_due_seconds",
            "Age of the oldest due pending page (0 if none)",
            ["channel"],
            registry=None,
        )
        self.lane_cycle = Gauge(
            "escalator_delivery_lane_last_cycle_timestamp_seconds",
            "When the channel's lane last completed a cycle (Unix time)",
            ["channel"],
            registry=None,
        )
        self.engine_tick = Gauge(
            "escalator_engine_last_tick_timestamp_seconds",
            "When the engine last completed a tick (Unix time)",
            registry=None,
        )
        self._parts = (
            self.attempts,
            self.attempt_seconds,
            self.in_flight,
            self.queue_depth,
            self.oldest_due,
            self.lane_cycle,
            self.engine_tick,
        )
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()

    def describe(self) -> Iterable[Metric]:
        for part in self._parts:
            yield from part.describe()

    def prepare(self, channels: Iterable[str]) -> None:
        """Every channel shows from the start, with zeros, so rules see a series at once."""
        for channel in channels:
            self.in_flight.labels(channel).set(0)
            self.queue_depth.labels(channel).set(0)
            self.oldest_due.labels(channel).set(0)
            for outcome in ("sent", "retry", "failed", "deadline"):
                self.attempts.labels(channel, outcome)

    def observe_queue(
        self, depth: Mapping[str, tuple[int, float]], channels: Iterable[str]
    ) -> None:
        """`depth`: channel -> (due pending rows, age in seconds of the oldest)."""
        for channel in channels:
            count, age = depth.get(channel, (0, 0.0))
            self.queue_depth.labels(channel).set(count)
            self.oldest_due.labels(channel).set(max(age, 0.0))
