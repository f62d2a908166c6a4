"""`make bench`: run every bench/bench_*.py module (or those named on the command line) and
print one JSON record per benchmark. Each module has `run() -> dict`.

Each benchmark runs in a fresh interpreter: several configure Django or the environment for
their own throwaway panel, and one benchmark's settings must not leak into the next."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import traceback
from pathlib import Path

from bench.common import emit

ONE = "--one"


def run_one(name: str) -> int:
    """Run one benchmark in this process and print its record."""
    module = importlib.import_module(f"bench.{name.removesuffix('.py')}")
    try:
        emit(module.run())
    except Exception as exc:  # the record still says what failed
        traceback.print_exc()
        emit({"benchmark": name, "error": str(exc)})
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == [ONE]:
        return run_one(argv[1])
    names = argv or sorted(
        info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    failed = 0
    for name in names:
        # one broken benchmark must not hide the others' numbers
        result = subprocess.run([sys.executable, "-m", "bench", ONE, name],
                                stdout=subprocess.PIPE, text=True)
        records = [line for line in result.stdout.splitlines() if line.startswith("{")]
        for line in records:
            emit(json.loads(line))
        if result.returncode != 0 or not records:
            failed += 1
            if not records:
                emit({"benchmark": name, "error": f"exited {result.returncode} with no record"})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
