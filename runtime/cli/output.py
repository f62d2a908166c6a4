"""Tables for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print left-aligned columns separated by three spaces, like docker's tables."""
    materialised = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in materialised:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines: list[Sequence[str]] = [columns, *materialised]
    for line in lines:
        sys.stdout.write("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        sys.stdout.write("\n")


def human_size(num_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(num_bytes) < 1000 or unit == "TB":
            return f"{num_bytes:.3g}{unit}" if unit != "B" else f"{int(num_bytes)}B"
        num_bytes /= 1000
    return f"{num_bytes}B"


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]
