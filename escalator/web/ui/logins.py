"""The console's two tables: personal login tokens and the key that signs sessions.

A token is stored only as its SHA-256; `escalator ui-token PERSON` prints a fresh one once
and replaces the old (which also ends every session opened with it). The signing key is
made by whichever replica needs it first and shared through the database, so a session
cookie or a form's CSRF token from one replica is good on every other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import String, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from escalator.store.tables import Base

KEY_NAME = "console-session"


class ConsoleTokenRow(Base):
    __tablename__ = "console_tokens"
    person: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ConsoleKeyRow(Base):
    __tablename__ = "console_keys"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_token(session: Session, person: str, now: datetime) -> str:
    """A fresh token for `person` (printed once, stored hashed); replaces any old one."""
    token = secrets.token_urlsafe(24)
    row = session.get(ConsoleTokenRow, person)
    if row is None:
        session.add(ConsoleTokenRow(person=person, token_sha256=digest(token), created_at=now))
    else:
        row.token_sha256, row.created_at = digest(token), now
    return token


def revoke_token(session: Session, person: str) -> bool:
    row = session.get(ConsoleTokenRow, person)
    if row is None:
        return False
    session.delete(row)
    return True


def check_token(session: Session, person: str, token: str) -> str | None:
    """The stored hash when `token` is `person`'s (compared in constant time), else None."""
    row = session.get(ConsoleTokenRow, person)
    given = digest(token)
    if row is None:
        hmac.compare_digest(given, given)  # same work whether or not the person has one
        return None
    return row.token_sha256 if hmac.compare_digest(given, row.token_sha256) else None


def token_hash(session: Session, person: str) -> str | None:
    row = session.get(ConsoleTokenRow, person)
    return None if row is None else row.token_sha256


def any_tokens(session: Session) -> bool:
    return bool(session.scalar(select(exists().where(ConsoleTokenRow.person.is_not(None)))))


def signing_key(session: Session, now: datetime) -> bytes:
    """The shared session key, created on first use (ON CONFLICT: replicas may race)."""
    value = session.scalar(select(ConsoleKeyRow.value).where(ConsoleKeyRow.name == KEY_NAME))
    if value is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(ConsoleKeyRow)
            .values(name=KEY_NAME, value=secrets.token_hex(32), created_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = session.scalar(select(ConsoleKeyRow.value).where(ConsoleKeyRow.name == KEY_NAME))
    assert value is not None
    return bytes.fromhex(value)
