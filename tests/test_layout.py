"""The test suite's own shape: helpers live in `tests/support` and `tests/fakes`, each real
process has one starter, and no test module imports another (a test that needs a helper
finds it where the helpers are, not inside some other test)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.support.helpers import ROOT

TESTS = ROOT / "tests"


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _python_files()
        for name in _imports(path)
        if name.split(".")[-1].startswith("test_") or name.split(".")[-1] == "conftest"
    }
    assert not offenders, sorted(offenders)


def test_helpers_are_imported_from_the_checkout_root() -> None:
    """`tests.support.x`, never `support.x` or `faults.x` (which depended on sys.path)."""
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _python_files()
        for name in _imports(path)
        if name.split(".")[0] in {"support", "fakes", "faults", "helpers"}
    }
    assert not offenders, sorted(offenders)


def _mentions(text: str) -> set[Path]:
    return {p for p in _python_files() if text in p.read_text() and p != Path(__file__)}


def test_one_starter_for_each_real_process() -> None:
    # `escalator serve` as a process: only tests/support/processes.py spawns programs.
    assert _mentions("subprocess.Popen(") == {TESTS / "support" / "processes.py"}
    # Alertmanager: only tests/support/alertmanager.py knows its binary and flags.
    assert _mentions("--cluster.listen-address") == {TESTS / "support" / "alertmanager.py"}
    # Uvicorn in a thread: only tests/support/servers.py.
    assert _mentions("uvicorn.Server(") == {TESTS / "support" / "servers.py"}


def test_freezegun_is_not_a_dependency_nobody_uses() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [
        dep
        for deps in [project.get("dependencies", []), *project["optional-dependencies"].values()]
        for dep in deps
    ]
    used = any("freezegun" in p.read_text() for p in _python_files() if p != Path(__file__))
    assert used == any(dep.startswith("freezegun") for dep in declared)
