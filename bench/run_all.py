"""Run every benchmark, on SQLite and PostgreSQL, and print the figures.

    python bench/run_all.py --quick    # a few minutes: small sizes, fewer runs
    python bench/run_all.py            # the full figures (run on a quiet machine)

PostgreSQL is the server named by ESCALATOR_TEST_PG (default postgres@127.0.0.1:5432);
each measurement uses a fresh database there and drops it afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("ingest.py", "latency.py", "scale.py", "storm.py", "ui.py")


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for script in SCRIPTS:
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        failed += subprocess.call([sys.executable, str(HERE / script), *extra]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
