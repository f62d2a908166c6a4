"""`make bench`: run every bench/bench_*.py module (or those named on the command line) and
print one JSON record per benchmark. Each module has `run() -> dict`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

from bench.common import emit


def main(argv: list[str]) -> int:
    names = argv or sorted(
        info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)])
        if info.name.startswith("bench_")
    )
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name.removesuffix('.py')}")
        try:
            emit(module.run())
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            traceback.print_exc()
            emit({"benchmark": name, "error": str(exc)})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
