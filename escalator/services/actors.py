"""Who acts: one rule for every way in (the CLI on the database, the CLI through the API,
the API itself, the console, phones, Slack).

- The name comes from `--as`, else `$ESCALATOR_USER`, else the login name (CLI), or from
  the request's `by` (API). Wherever it comes from, it is checked the same way: a login
  name such as `root` gets no pass that `--as root` would not.
- With a configuration, it must be a person the configuration names.
- Without one (the CLI on a database with no config file), it must still look like a
  person id, so the timeline never records a blank or a shell fragment as the actor.

Stdlib only: the CLI checks the name before it imports the database layer.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from typing import Protocol

# The person id grammar of the configuration (config/model.py: `people[].id`).
PERSON_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class People(Protocol):
    def person(self, person_id: str) -> object | None: ...


class UnknownActor(ValueError):
    """The named actor may not act (not a configured person, or not a person id)."""


def requested(as_: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The name the CLI acts as and where it came from (`--as`, `$ESCALATOR_USER`, or
    `login name`), for an error that says what to change."""
    env = os.environ if environ is None else environ
    if as_:
        return as_, "--as"
    if env.get("ESCALATOR_USER"):
        return env["ESCALATOR_USER"], "$ESCALATOR_USER"
    try:
        return getpass.getuser(), "login name"
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        return "", "login name"


def check(config: People | None, name: str) -> None:
    """Raise `UnknownActor` unless `name` may act (the rule in the module docstring)."""
    if not PERSON_ID.fullmatch(name or ""):
        raise UnknownActor(f"{name!r} is not a person id")
    if config is not None and config.person(name) is None:
        raise UnknownActor(f"unknown person {name!r}")
