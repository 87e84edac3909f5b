"""The `/escalator` slash command's grammar, as a pure parser.

/escalator ack 12 [13 ...]     acknowledge alerts
/escalator ack all             acknowledge every triggered alert (like `escalator ack --all`)
/escalator resolve 12 [13 ...] resolve alerts
/escalator update 12 <text>    post a status update to incident 12
/escalator list                open alerts
/escalator oncall              who is on call now
/escalator help
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["ack", "resolve", "update", "list", "oncall", "help"]

USAGE = (
    "Usage: `/escalator ack 12` · `/escalator ack all` · `/escalator resolve 12` · "
    "`/escalator update 12 what is happening` · `/escalator list` · `/escalator oncall`"
)
_MAX_IDS = 50
_MAX_UPDATE = 2000


@dataclass(frozen=True)
class Command:
    verb: Verb
    ids: tuple[int, ...] = ()
    all: bool = False
    text: str = ""


class CommandError(ValueError):
    pass


def _ids(words: list[str], verb: str) -> tuple[int, ...]:
    ids: list[int] = []
    for word in words:
        for part in filter(None, re.split(r"[,\s]+", word)):
            part = part.lstrip("#")
            if not part.isdigit() or len(part) > 12:
                raise CommandError(f"`{verb}` takes alert numbers, not {part!r}. {USAGE}")
            ids.append(int(part))
    if not ids:
        raise CommandError(f"`{verb}` needs an alert number. {USAGE}")
    if len(ids) > _MAX_IDS:
        raise CommandError(f"at most {_MAX_IDS} alerts at once")
    return tuple(dict.fromkeys(ids))


def parse(text: str) -> Command:
    words = text.split()
    if not words or words[0].lower() in ("help", "-h", "--help"):
        return Command("help")
    verb, rest = words[0].lower(), words[1:]
    if verb in ("ack", "acknowledge"):
        if len(rest) == 1 and rest[0].lower() == "all":
            return Command("ack", all=True)
        return Command("ack", _ids(rest, "ack"))
    if verb == "resolve":
        return Command("resolve", _ids(rest, "resolve"))
    if verb == "update":
        if not rest:
            raise CommandError(f"`update` needs an incident number and a message. {USAGE}")
        ids = _ids(rest[:1], "update")
        message = text.split(None, 2)[2].strip() if len(rest) > 1 else ""
        if not message:
            raise CommandError(f"`update {ids[0]}` needs a message. {USAGE}")
        if len(message) > _MAX_UPDATE:
            raise CommandError(f"an update is at most {_MAX_UPDATE} characters")
        return Command("update", ids, text=message)
    if verb in ("list", "ls"):
        return Command("list")
    if verb in ("oncall", "on-call", "who"):
        return Command("oncall")
    raise CommandError(f"unknown command {verb!r}. {USAGE}")
