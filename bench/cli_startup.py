"""How long `escalator --help` and `escalator list` take to start, end to end.

Each is run N times as a fresh process (the way a person runs it), on a small SQLite
database (20 open alerts opened through the webhook path) with the shipped configuration;
the median wall time and the median CPU time (user + system of the child) are printed,
with the machine's load first: on a busy machine wall time grows, CPU time much less.
Targets (issue 12): `--help` <= 0.25 s, `list` <= 0.4 s.

The floor printed last is a bare interpreter importing the two libraries `list` cannot do
without (SQLAlchemy's ORM, pydantic for the policy snapshot): what this machine charges
before any escalator code runs. `PYTHONDONTWRITEBYTECODE` is dropped for the children so
the warm-up run leaves .pyc files, as an installed wheel has; without them every run
compiles escalator's sources again (~65 ms here).

    python bench/cli_startup.py            # 15 runs each
    python bench/cli_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "config" / "escalator.yaml"
TARGETS = {"--help": 0.25, "list": 0.4}


def _small_database(folder: Path) -> str:
    """A SQLite file with 20 open alerts, opened the way the webhook opens them."""
    from tests.support.helpers import am_alert
    from tests.support.rig import Rig

    url = f"sqlite:///{folder / 'escalator.db'}"
    rig = Rig(url)
    try:
        alerts = [
            am_alert(fingerprint=f"bench{i:011d}", instance=f"api-{i}") for i in range(20)
        ]
        rig.fire(*alerts)
    finally:
        rig.close()
    return url


def _escalator() -> list[str]:
    found = shutil.which("escalator", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "escalator"]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        url = _small_database(Path(tmp))
        env = {
            **os.environ,
            "ESCALATOR_CONFIG": str(CONFIG),
            "ESCALATOR_DATABASE_URL": url,
            "ESCALATOR_USER": "alice",
        }
        env.pop("ESCALATOR_SERVER", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        base = _escalator()
        for verb in ("--help", "list"):
            argv = [*base, verb]
            _run(argv, env)  # warm the page cache and .pyc files
            walls, cpus = zip(*(_run(argv, env) for _ in range(args.runs)), strict=True)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            print(
                f"escalator {verb:<7} median of {args.runs}: wall {wall:.3f} s, "
                f"cpu {cpu:.3f} s (target {TARGETS[verb]} s wall; min wall {min(walls):.3f} s)"
            )
        floor = [sys.executable, "-c", "import sqlalchemy.orm, pydantic"]
        walls = [_run(floor, env)[0] for _ in range(args.runs)]
        print(
            f"floor: python importing sqlalchemy.orm + pydantic, median of {args.runs}: "
            f"wall {statistics.median(walls):.3f} s"
        )
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
