"""
Run every benchmark: ``python -m bench`` (or ``python -m bench orders imports`` for some).

Each ``bench/<name>.py`` that defines ``main`` runs as its own process
(``python -m bench.<name>``, default arguments), one after another; the long
ones (:data:`OPT_IN`: the 10-minute soak) only when named. So one
benchmark's Redis, sandbox and event loop never share a process with the
next. Every benchmark prints its figures next to a baseline measured in the
same run. The exit code is the number of benchmarks that missed their goal
or failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Left out of the default run: the soak takes 10 minutes, the refresher catch-up about as
#: long, the profile is a tool with no goal
#: (``python -m bench soak`` runs one by name).
OPT_IN = frozenset({"soak", "profile_cached", "refresher_catchup"})


def benchmarks() -> list[str]:
    """Names of the benchmark modules, in file name order."""
    return [
        path.stem
        for path in sorted(HERE.glob("*.py"))
        if not path.stem.startswith("_") and "\ndef main(" in path.read_text()
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen (default: all) benchmarks; the number that failed."""
    names = argv if argv is not None else sys.argv[1:]
    known = benchmarks()
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names or [n for n in known if n not in OPT_IN]:
        print(f"== bench.{name}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent, check=False)
        print(f"   ({time.perf_counter() - started:.0f} s, exit {done.returncode})\n", flush=True)
        failed += done.returncode != 0
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
