"""escalator: an escalation and paging scheduler behind Prometheus Alertmanager."""

__version__ = "0.1.0"
