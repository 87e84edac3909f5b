"""Helpers shared by tests that run real processes (the daemon, Alertmanager, the CLI)."""
