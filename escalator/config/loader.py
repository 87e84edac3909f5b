"""Reading a configuration file: YAML in, a validated `Config` out, or a `ConfigError`
that names the file, the path inside it, the line (where YAML can tell) and the reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from escalator.config.model import Config
from escalator.config.refs import reference_problems


class ConfigError(Exception):
    """Every problem found in one config file, each with its path inside the file."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(f"{self.source}: {where}: {what}" for where, what in self.problems)


def _line_of(root: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node that `path` reaches, for error messages."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for key in path:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            found = node.value[key]
        else:
            found = None
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; raise ConfigError listing every problem with path and line."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(parse)"
        raise ConfigError(
            source, [(where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", "expected a mapping of settings")])

    def located(path: tuple[Any, ...]) -> str:
        line = _line_of(root, path)
        return f"{_dotted(path)} (line {line})" if line else _dotted(path)

    # Schema errors and dangling references in one pass: the reference checks read the raw
    # mapping, so they need no valid model (see refs.py).
    problems: list[tuple[str, str]] = []
    cfg: Config | None = None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            # Drop pydantic's union/validator tags (e.g. "function-after[...]") from the path.
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"unknown key {path[-1]!r} (a typo, or a key this version lacks?)"
            problems.append((located(path), message))
    flagged = {where for where, _ in problems}
    for path, message in reference_problems(data):
        if located(path) not in flagged:
            problems.append((located(path), message))
    if problems or cfg is None:
        raise ConfigError(source, problems)
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(str(file), [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    return parse_config(text, str(file))
