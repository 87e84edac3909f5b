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

from escalator.config.model import Config, Target


class ConfigError(Exception):
    """Every problem found in one config file, each with its path inside the file."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(f"{self.source}: {where}: {what}" for where, what in self.problems)


def _references(cfg: Config) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-references pydantic cannot see: every id a config names must exist."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    people = {p.id for p in cfg.people}
    for kind, items in (("people", cfg.people), ("teams", cfg.teams), ("rotations", cfg.rotations)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                problems.append(((kind, i, "id"), f"duplicate id {item.id!r}"))
            seen.add(item.id)
    for kind, items in (("teams", cfg.teams), ("rotations", cfg.rotations)):
        for i, item in enumerate(items):
            for j, member in enumerate(item.members):
                if member not in people:
                    problems.append(((kind, i, "members", j), f"unknown person {member!r}"))
    for i, rotation in enumerate(cfg.rotations):
        for k, layer in enumerate(rotation.layers):
            for j, member in enumerate(layer.members):
                if member not in people:
                    path = ("rotations", i, "layers", k, "members", j)
                    problems.append((path, f"unknown person {member!r}"))
        for k, override in enumerate(rotation.overrides):
            if override.person not in people:
                path = ("rotations", i, "overrides", k, "person")
                problems.append((path, f"unknown person {override.person!r}"))
    known = {
        "person": people,
        "team": {t.id for t in cfg.teams},
        "rotation": {r.id for r in cfg.rotations},
        "role": set(cfg.roles),
    }

    def check_target(target: Target, path: tuple[Any, ...]) -> None:
        if target.kind in known and target.ref not in known[target.kind]:
            problems.append(((*path, target.kind), f"unknown {target.kind} {target.ref!r}"))

    for role, targets in cfg.roles.items():
        for j, target in enumerate(targets):
            if target.kind == "role":
                problems.append((("roles", role, j, "role"), "a role cannot name another role"))
            else:
                check_target(target, ("roles", role, j))
    for name, policy in cfg.policies.items():
        for i, step in enumerate(policy.steps):
            for j, target in enumerate(step.targets):
                check_target(target, ("policies", name, "steps", i, "targets", j))
    for i, route in enumerate(cfg.routes):
        if route.policy not in cfg.policies:
            problems.append((("routes", i, "policy"), f"unknown policy {route.policy!r}"))
    if cfg.default_policy and cfg.default_policy not in cfg.policies:
        problems.append((("default_policy",), f"unknown policy {cfg.default_policy!r}"))
    return problems


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

    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # Drop pydantic's union/validator tags (e.g. "function-after[...]") from the path.
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = f"unknown key {path[-1]!r} (a typo, or a key this version lacks?)"
            problems.append((located(path), message))
        raise ConfigError(source, problems) from exc
    refs = _references(cfg)
    if refs:
        raise ConfigError(source, [(located(path), msg) for path, msg in refs])
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(str(file), [("(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    return parse_config(text, str(file))
