"""What every `escalator` subcommand shares: the context (config, database, remote
server), output helpers and time parsing.

Kept apart from cli.py so command modules (roster, paging, incidents) can import it
without importing the command group that registers them.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from escalator.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from escalator.cli.backend import Backend
from escalator.config.durations import parse_duration
from escalator.store.db import (
    SchemaNotReady,
    default_database_url,
    make_engine,
    require_current_schema,
    session_factory,
)
from escalator.text import escape

DEFAULT_CONFIG = "config/escalator.yaml"
DEFAULT_PORT = 9797


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (naive means UTC), `now`, or `+30m`/`-2h` relative to now."""
    if value is None:
        return None
    now = datetime.now(UTC)
    if value == "now":
        return now
    if value[:1] in "+-" and len(value) > 1:
        delta = parse_duration(value[1:])
        return now + delta if value[0] == "+" else now - delta
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r}: use ISO 8601 (2026-11-26T03:00), now, +30m or -2h"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class Context:
    def __init__(
        self,
        config_path: str | None,
        database_url: str | None,
        server: str | None,
        token: str | None,
    ):
        self.config_path = config_path
        self.database_url = database_url or default_database_url()
        self.server = server.rstrip("/") if server else None
        self.token = token
        self._config: Config | None = None

    def config(self, required: bool = True) -> Config | None:
        if self._config is None:
            path = self.config_path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
            if path is None:
                if required:
                    raise click.UsageError(
                        f"no configuration: pass --config FILE or set ESCALATOR_CONFIG "
                        f"({DEFAULT_CONFIG} does not exist here)"
                    )
                return None
            try:
                self._config = load_config(path)
            except ConfigError as exc:
                raise click.ClickException(f"invalid configuration:\n{exc.render()}") from exc
        return self._config

    # Remote --------------------------------------------------------------------------

    def backend(self) -> Backend:
        """Where data verbs go: the API with --server, else the database."""
        from escalator.cli.backend import Local, Remote

        return Remote(self) if self.server else Local(self)

    def http(self, method: str, path: str, raw: bool = False, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, f"{self.server}{path}", headers=headers, timeout=15, **kwargs
            )
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.server}: {exc}") from exc
        if response.status_code >= 400:
            try:
                reason = response.json().get("error", response.text)
            except ValueError:
                reason = response.text
            raise click.ClickException(f"{self.server} answered {response.status_code}: {reason}")
        return response.content if raw else response.json()

    # Local ---------------------------------------------------------------------------

    def local(self):  # type: ignore[no-untyped-def]
        engine = make_engine(self.database_url)
        try:
            require_current_schema(engine)
        except SchemaNotReady as exc:
            raise click.ClickException(f"{safe_url(self.database_url)}: {exc}") from exc
        except DBAPIError as exc:
            raise click.ClickException(
                f"cannot open {safe_url(self.database_url)}: {exc.orig}"
            ) from exc
        return engine, session_factory(engine)


pass_ctx = click.make_pass_decorator(Context)
output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def actor(as_: str | None, ctx: Context) -> str:
    who = as_ or os.environ.get("ESCALATOR_USER") or getpass.getuser()
    config = ctx.config(required=False)
    if as_ and config is not None and config.person(as_) is None:
        raise click.BadParameter(
            f"unknown person {as_!r} in {ctx.config_path or DEFAULT_CONFIG}", param_hint="--as"
        )
    return who


def age(iso: str | None) -> str:
    if not iso:
        return "-"
    then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    seconds = int((datetime.now(UTC) - then).total_seconds())
    sign = "in " if seconds < 0 else ""
    seconds = abs(seconds)
    text = (
        f"{seconds}s"
        if seconds < 120
        else (
            f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h{seconds % 3600 // 60}m"
        )
    )
    return f"{sign}{text}" if sign else f"{text} ago"


def table(rows: list[list[str]], header: list[str]) -> str:
    # Cells come from alerts (names, labels, actors): control characters are shown escaped,
    # never interpreted by the terminal, and a line break cannot split a row.
    rows = [[escape(c) for c in row] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)
