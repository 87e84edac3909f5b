"""Helpers for fault and scale tests: real processes, a private PostgreSQL, Alertmanager.

Nothing here is mocked: each helper starts a real program on loopback (an `escalator serve`
process, a throw-away PostgreSQL cluster made with `initdb`, Debian's Alertmanager) and
hands the test a handle to break it on purpose: SIGKILL, `pg_ctl stop`, restart.
"""
