"""What every `escalator` subcommand shares: the context (config, database, remote
server), output helpers, parameter types and time parsing.

Kept apart from main.py so command modules (roster, paging, incidents) can import it
without importing the command group that registers them.

Imports here are stdlib and click only: `escalator --help` and every verb import this
module, and SQLAlchemy, Alembic, pydantic and httpx together take half a second to import.
Each is imported where it is first needed (bench/cli_startup.py measures it).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from escalator.read import times
from escalator.text import escape

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from escalator.cli.backend import Backend
    from escalator.config import Config

DEFAULT_CONFIG = "config/escalator.yaml"
DEFAULT_PORT = 9797
SUPPORTED_DATABASES = ("sqlite", "postgresql")


class BadDatabaseUrl(click.ClickException):
    """A --database-url (or $ESCALATOR_DATABASE_URL) escalator cannot use: exit 2 (a usage
    error), one line, no usage text: the option is global, not the verb's."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(f"--database-url / $ESCALATOR_DATABASE_URL: {message}")


def normalize_database_url(url: str) -> str:
    """The URL escalator opens for `url`, or `BadDatabaseUrl` saying why not.

    `postgres://` and a driverless `postgresql://` (what Heroku, psql and most tools
    write) mean PostgreSQL through psycopg 3, the driver escalator ships with; SQLAlchemy
    alone would reject the first and look for psycopg2 for the second. Other databases
    are refused by name rather than with a missing-driver traceback.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise BadDatabaseUrl(
            f"{url!r} is not a database URL "
            "(e.g. sqlite:////var/lib/escalator/escalator.db or postgresql://user@host/db)"
        ) from exc
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in SUPPORTED_DATABASES:
        raise BadDatabaseUrl(
            f"{backend} is not supported: escalator runs on SQLite or PostgreSQL "
            f"({safe_url(text)})"
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "postgresql" and driver != "psycopg":
        raise BadDatabaseUrl(
            f"PostgreSQL driver {driver!r} is not installed with escalator: "
            "use postgresql:// or postgresql+psycopg://"
        )
    return parsed.render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def parse_time(value: str | None) -> datetime | None:
    """ISO 8601 (naive means UTC), `now`, or `+30m`/`-2h` relative to now."""
    if value is None:
        return None
    now = datetime.now(UTC)
    if value == "now":
        return now
    if value[:1] in "+-" and len(value) > 1:
        delta = parse_duration(value[1:], "TIME")
        return now + delta if value[0] == "+" else now - delta
    try:
        return times.parse(value).astimezone(UTC)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r}: use ISO 8601 (2026-11-26T03:00), now, +30m or -2h"
        ) from exc


def parse_duration(value: str, name: str) -> Any:
    """A duration (`30m`, `2h`) or a usage error naming the option it came from."""
    from escalator.config.durations import parse_duration as parse

    try:
        return parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from exc


class AlertId(click.ParamType):
    """An alert (or incident, override) id as the tables print it: `#12` or `12`."""

    name = "ID"

    def __init__(self, hint: str = "write 12 or #12") -> None:
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        number = text[1:] if text.startswith("#") else text
        if not number.isdigit():
            self.fail(f"{value!r} is not an id ({self.hint})", param, ctx)
        return int(number)


ALERT_ID = AlertId()
WINDOW_ID = AlertId("a window id such as 3 or #3; weekly windows of the config end on their own")


class Context:
    def __init__(
        self,
        config_path: str | None,
        database_url: str | None,
        server: str | None,
        token: str | None,
        tz: str | None = None,
    ):
        self.config_path = config_path
        self._database_url = database_url
        self.server = server.rstrip("/") if server else None
        self.token = token
        self.tz_name = tz
        self._config: Config | None = None
        self._loaded = False
        self._tz: tzinfo | None = None

    @property
    def database_url(self) -> str:
        """The URL given (or the default), normalised: checked on first use, so verbs that
        never open the database (`--help`, `check-config`) do not fail on a bad one."""
        if self._database_url is None:
            from escalator.store.db import default_database_url

            self._database_url = default_database_url()
        return normalize_database_url(self._database_url)

    def config(self, required: bool = True) -> Config | None:
        if not self._loaded:
            path = self.config_path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
            if path is None:
                if required:
                    raise click.UsageError(
                        f"no configuration: pass --config FILE or set ESCALATOR_CONFIG "
                        f"({DEFAULT_CONFIG} does not exist here)"
                    )
                return None
            from escalator.config import ConfigError, load_config

            try:
                self._config = load_config(path)
            except ConfigError as exc:
                raise click.ClickException(f"invalid configuration:\n{exc.render()}") from exc
            self._loaded = True
        return self._config

    # Times ---------------------------------------------------------------------------

    def tz(self) -> tzinfo:
        """The zone tables print times in: --tz, else the acting person's zone in the
        configuration (`$ESCALATOR_USER` or the login name), else the machine's.
        Worked out once per command: a table asks for it in every row."""
        if self._tz is None:
            self._tz = self._reader_zone()
        return self._tz

    def _reader_zone(self) -> tzinfo:
        if self.tz_name:
            try:
                return times.zone(self.tz_name)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--tz") from exc
        from escalator.services.actors import requested

        try:
            return times.zone(self._person_zone(requested(None)[0]))
        except ValueError:
            return times.zone(None)

    def _person_zone(self, who: str) -> str | None:
        """The `timezone` of person `who` in the configuration, if it names them. Read from
        the loaded model when a verb loaded it, else straight from the YAML: a read-only
        verb need not validate the whole configuration (pydantic) to print a time."""
        if self._loaded and self._config is not None:
            person = self._config.person(who)
            return person.timezone if person is not None else None
        path = self.config_path or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
        if path is None:
            return None
        try:
            import yaml

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)
            for person in data.get("people") or []:
                if isinstance(person, dict) and person.get("id") == who:
                    zone = person.get("timezone")
                    return zone if isinstance(zone, str) else None
        except Exception:
            return None
        return None

    # Remote --------------------------------------------------------------------------

    def backend(self) -> Backend:
        """Where data verbs go: the API with --server, else the database."""
        from escalator.cli.backend import Local, Remote

        return Remote(self) if self.server else Local(self)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The daemon's answer (an httpx.Response), or a one-line error."""
        import httpx

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
        return response

    def http(self, method: str, path: str, raw: bool = False, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.content if raw else response.json()

    # Local ---------------------------------------------------------------------------

    def local(self) -> tuple[Engine, sessionmaker[Session]]:
        """The database, schema checked. Only `db upgrade` and `serve` create a database:
        every other verb refuses a SQLite file that does not exist rather than leave an
        empty one (and its folder) behind a typo."""
        from sqlalchemy.exc import DBAPIError

        from escalator.store.db import (
            SchemaNotReady,
            make_engine,
            require_current_schema,
            session_factory,
        )

        url = self.database_url
        path = sqlite_path(url)
        if path is not None and not path.is_file():
            raise click.ClickException(
                f"database file {path} does not exist: check --database-url / "
                "$ESCALATOR_DATABASE_URL, or create it with `escalator db upgrade`"
            )
        engine = make_engine(url)
        try:
            if not schema_is_head(engine):  # the full check, with alembic's own message
                require_current_schema(engine)
        except SchemaNotReady as exc:
            engine.dispose()
            raise click.ClickException(f"{safe_url(url)}: {exc}") from exc
        except DBAPIError as exc:
            engine.dispose()
            raise click.ClickException(f"cannot open {safe_url(url)}: {exc.orig}") from exc
        return engine, session_factory(engine)


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)


def migration_head() -> str | None:
    """The head revision, read from the migration files' `revision`/`down_revision` lines
    without importing Alembic (a third of a `list`'s start-up); None when unsure (several
    heads, an unusual file), and the caller then asks Alembic."""
    from importlib.resources import files

    revisions: set[str] = set()
    downs: set[str] = set()
    try:
        for entry in files("escalator.migrations").joinpath("versions").iterdir():
            if not entry.name.endswith(".py") or entry.name.startswith("__"):
                continue
            text = entry.read_text(encoding="utf-8")
            found, down = _REVISION.search(text), _DOWN.search(text)
            if found is None or down is None:
                return None
            revisions.add(found.group(1))
            downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    except OSError:
        return None
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def schema_is_head(engine: Engine) -> bool:
    """A fast yes for the common case (the schema is current); False means "ask Alembic",
    which says what is wrong."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    head = migration_head()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return list(current) == [head]
    except SQLAlchemyError:
        return False


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
    """JSON out, every time in the one JSON form (RFC 3339, UTC, `Z`: read/times.py)."""
    click.echo(json.dumps(times.json_ready(data), indent=2, sort_keys=True, default=str))


def actor(as_: str | None, ctx: Context) -> str:
    """Who acts (services/actors.py: the same rule as the API's), checked before anything
    is sent so the error names what to change."""
    from escalator.services.actors import UnknownActor, check, requested

    who, source = requested(as_)
    try:
        check(ctx.config(required=False), who)
    except UnknownActor as exc:
        where = ctx.config_path or DEFAULT_CONFIG
        if source == "--as":  # the option is wrong: a usage error (exit 2)
            raise click.BadParameter(f"{exc} in {where}", param_hint="--as") from exc
        # The environment is (exit 1): the same refusal the service gives through the API.
        raise click.ClickException(
            f"{exc} (from the {source}; pass --as PERSON or set $ESCALATOR_USER to a person "
            f"of {where})"
        ) from exc
    return who


def age(iso: str | None) -> str:
    """How long ago (or how soon) an instant is: `5m ago`, `in 4m`."""
    return times.relative(iso, datetime.now(UTC))


def when(ctx: Context, iso: str | None) -> str:
    """A table cell for an instant: local time in the reader's zone, and how far away."""
    return times.cell(iso, ctx.tz(), datetime.now(UTC))


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


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def stdout_bytes(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
