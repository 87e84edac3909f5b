"""Every Prometheus metric of one daemon, on that daemon's own registry.

Built by the daemon and handed to the parts that count (webhook, Events API v2, engine,
Slack, /metrics), never registered process-wide: two daemons in one process (the tests
build dozens) each count their own, and nothing is left behind by an earlier one.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # What the default registry would have shown: CPU, memory, file descriptors, GC.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.webhook_requests = Counter(
            "escalator_webhook_requests_total", "Alertmanager posts by answer", ["code"],
            registry=r,
        )  # fmt: skip
        self.webhook_alerts = Counter(
            "escalator_webhook_alerts_total", "Alerts received", ["status"], registry=r
        )
        self.events_v2_requests = Counter(
            "escalator_events_v2_requests_total", "Events API v2 requests by path and answer",
            ["path", "code"], registry=r,
        )  # fmt: skip
        # Read from the store at scrape time (escalator.web.health).
        self.alerts = Gauge("escalator_alerts", "Tracked alerts by state", ["status"], registry=r)
        self.engine_tick_seconds = Histogram(
            "escalator_engine_tick_seconds", "Wall time of one engine tick", registry=r
        )
        self.engine_alerts_stepped = Counter(
            "escalator_engine_alerts_stepped_total", "Alerts the engine stepped", registry=r
        )
        self.escalation_lag = Histogram(
            "escalator_escalation_lag_seconds",
            "How late an escalation step ran after it fell due",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.slack_auth_failed = Gauge(
            "escalator_slack_auth_failed",
            "1 while Slack refuses the bot token (invalid_auth and the like), else 0",
            registry=r,
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        return generate_latest(self.registry)
