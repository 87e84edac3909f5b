"""Cross-references in a configuration: every id a target, a member or a route names must
exist.

The checks walk the *raw* YAML mapping rather than the validated model, so they also run
when schema validation failed elsewhere in the file: `check-config` and `serve` then report
a typo in `after:` and an unknown role in one pass, instead of revealing the second only
once the first is fixed. A section too malformed to read ids from (not a list, an id that
is not a string) is left to the schema errors: checking against a partial set of ids would
report every reference to it as unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path = tuple[Any, ...]
Problem = tuple[Path, str]

TARGET_KINDS = ("person", "team", "rotation", "role")


def _entries(data: dict[str, Any], key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) of a list section's mappings; nothing when it is not a list."""
    section = data.get(key)
    if isinstance(section, list):
        for i, item in enumerate(section):
            if isinstance(item, dict):
                yield i, item


def _ids(data: dict[str, Any], key: str) -> set[str] | None:
    """The ids a list section defines, or None when some cannot be read."""
    section = data.get(key, [])
    if section is None:
        return set()
    if not isinstance(section, list):
        return None
    ids = set()
    for item in section:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return None
        ids.add(item["id"])
    return ids


def _names(data: dict[str, Any], key: str) -> set[str] | None:
    """The names a mapping section defines (roles, policies), or None when not a mapping."""
    section = data.get(key, {})
    if section is None:
        return set()
    return {str(name) for name in section} if isinstance(section, dict) else None


def _duplicates(data: dict[str, Any], section: str, key: str) -> list[Problem]:
    """Items of a list section repeating an earlier item's `key` (an id or a name)."""
    seen: set[str] = set()
    problems: list[Problem] = []
    for i, item in _entries(data, section):
        value = item.get(key)
        if isinstance(value, str):
            if value in seen:
                problems.append(((section, i, key), f"duplicate {key} {value!r}"))
            seen.add(value)
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def reference_problems(data: dict[str, Any]) -> list[Problem]:
    """Every dangling or duplicate id in the raw configuration mapping, with its path."""
    problems: list[Problem] = []
    people = _ids(data, "people")
    known: dict[str, set[str] | None] = {
        "person": people,
        "team": _ids(data, "teams"),
        "rotation": _ids(data, "rotations"),
        "role": _names(data, "roles"),
    }
    policies = _names(data, "policies")

    for kind in ("people", "teams", "rotations"):
        problems += _duplicates(data, kind, "id")

    def person(value: Any, path: Path) -> None:
        if people is not None and isinstance(value, str) and value not in people:
            problems.append((path, f"unknown person {value!r}"))

    def target(value: Any, path: Path) -> None:
        if not isinstance(value, dict):
            return
        for kind in TARGET_KINDS:
            ref, ids = value.get(kind), known[kind]
            if ids is not None and isinstance(ref, str) and ref not in ids:
                problems.append(((*path, kind), f"unknown {kind} {ref!r}"))

    def targets(value: Any, path: Path) -> None:
        for j, item in enumerate(_list(value)):
            target(item, (*path, j))

    for kind in ("teams", "rotations"):
        for i, item in _entries(data, kind):
            for j, member in enumerate(_list(item.get("members"))):
                person(member, (kind, i, "members", j))
    for i, rotation in _entries(data, "rotations"):
        for k, layer in enumerate(_list(rotation.get("layers"))):
            if isinstance(layer, dict):
                for j, member in enumerate(_list(layer.get("members"))):
                    person(member, ("rotations", i, "layers", k, "members", j))
        for k, override in enumerate(_list(rotation.get("overrides"))):
            if isinstance(override, dict):
                person(override.get("person"), ("rotations", i, "overrides", k, "person"))

    roles = data.get("roles")
    if isinstance(roles, dict):
        for role, members in roles.items():
            for j, item in enumerate(_list(members)):
                if isinstance(item, dict) and "role" in item:
                    problems.append((("roles", role, j, "role"), "a role cannot name another role"))
                else:
                    target(item, ("roles", role, j))

    raw_policies = data.get("policies")
    if isinstance(raw_policies, dict):
        for name, raw_policy in raw_policies.items():
            if isinstance(raw_policy, dict):
                for i, step in enumerate(_list(raw_policy.get("steps"))):
                    if isinstance(step, dict):
                        targets(step.get("targets"), ("policies", name, "steps", i, "targets"))

    # The incident protocol pages these too: an unknown role here means the stakeholder
    # update or the "3 CRITICAL ALERTS" page goes to nobody at run time.
    incidents = data.get("incidents")
    if isinstance(incidents, dict):
        targets(incidents.get("stakeholders"), ("incidents", "stakeholders"))
        multiple = incidents.get("multiple_critical")
        if isinstance(multiple, dict):
            targets(multiple.get("targets"), ("incidents", "multiple_critical", "targets"))
    # The people invited to every Slack incident channel.
    channels = data.get("channels")
    slack = channels.get("slack") if isinstance(channels, dict) else None
    if isinstance(slack, dict):
        targets(slack.get("invite"), ("channels", "slack", "invite"))

    def policy(value: Any, path: Path) -> None:
        if policies is not None and isinstance(value, str) and value not in policies:
            problems.append((path, f"unknown policy {value!r}"))

    for i, route in _entries(data, "routes"):
        policy(route.get("policy"), ("routes", i, "policy"))
    if data.get("default_policy"):
        policy(data["default_policy"], ("default_policy",))
    # Heartbeats, integrations and weekly maintenance windows: unique names, known policies.
    for kind in ("heartbeats", "integrations", "maintenance"):
        problems += _duplicates(data, kind, "name")
        for i, item in _entries(data, kind):
            if item.get("policy") is not None:
                policy(item.get("policy"), (kind, i, "policy"))
    return problems
