"""Reading conmon's k8s-file logs: `TIMESTAMP STREAM F|P TEXT` per line.

`P` marks a partial line (conmon splits long lines and writes unterminated output as it comes);
the entry continues on the next `P`/`F` record of the same stream. Entries are yielded with the
timestamp of their first record.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runtime.containers.options import parse_duration
from runtime.errors import InvalidArgument

FOLLOW_POLL = 0.05


@dataclass
class LogEntry:
    timestamp: str  # as conmon wrote it (RFC 3339 with nanoseconds)
    stream: str  # "stdout" or "stderr"
    text: str  # without the trailing newline
    complete: bool = True  # False when the output ended without a newline

    @property
    def time(self) -> float:
        return timestamp_seconds(self.timestamp)


def timestamp_seconds(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 timestamp with up to nanosecond precision."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    zone = match.group(3) or "Z"
    base = datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone))
    fraction = float(f"0.{match.group(2)}") if match.group(2) else 0.0
    return base.timestamp() + fraction


def parse_time(value: str | None, flag: str, now: float | None = None) -> float | None:
    """`--since`/`--until`: an RFC 3339 time or date, a Unix timestamp, or a duration
    (`10m`, `1h30m`) meaning that long before now."""
    if value is None or value == "":
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        text += "T00:00:00Z"
    try:
        return timestamp_seconds(text)
    except ValueError:
        pass
    try:
        return (now if now is not None else time.time()) - parse_duration(text, flag) / 1e9
    except InvalidArgument:
        raise InvalidArgument(
            f"invalid {flag} {value!r}: use an RFC 3339 time (2024-01-02T15:04:05Z), a Unix "
            "timestamp or a duration such as 10m"
        ) from None


class _Assembler:
    """Joins partial records into whole entries, per stream."""

    def __init__(self) -> None:
        self.pending: dict[str, LogEntry] = {}

    def feed(self, line: str) -> LogEntry | None:
        parts = line.rstrip("\n").split(" ", 3)
        if len(parts) < 3:
            return None
        timestamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) > 3 else ""
        previous = self.pending.pop(stream, None)
        if previous is not None:
            previous.text += text
            entry = previous
        else:
            entry = LogEntry(timestamp, stream, text)
        if tag == "P":
            self.pending[stream] = entry
            return None
        return entry

    def flush(self) -> list[LogEntry]:
        left = list(self.pending.values())
        for entry in left:
            entry.complete = False
        self.pending.clear()
        return sorted(left, key=lambda e: e.timestamp)


def read_entries(path: Path, since: float | None = None, until: float | None = None,
                 tail: int | None = None) -> tuple[list[LogEntry], int]:
    """The log's entries (filtered by time, the last `tail` of them) and the byte offset
    where reading stopped, for `follow` to continue from."""
    assembler = _Assembler()
    kept: deque[LogEntry] | list[LogEntry] = deque(maxlen=tail) if tail is not None else []
    offset = 0
    try:
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # conmon is still writing this record
                offset += len(line.encode("utf-8", errors="replace"))
                entry = assembler.feed(line)
                if entry is not None and _in_window(entry, since, until):
                    kept.append(entry)
    except FileNotFoundError:
        return [], 0
    if tail == 0:
        return [], offset
    return list(kept), offset


def _in_window(entry: LogEntry, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    moment = entry.time
    return (since is None or moment >= since) and (until is None or moment <= until)


def follow(path: Path, offset: int, stopped: Callable[[], bool],
           until: float | None = None) -> Iterator[LogEntry]:
    """Entries appended after `offset` as they arrive, until `stopped()` is true and the file
    has been read to its end (so nothing written before the exit is missed)."""
    assembler = _Assembler()
    buffer = b""
    with open(path, "rb") if path.exists() else open(os.devnull, "rb") as f:
        f.seek(offset)
        while True:
            finished = stopped()  # check before reading: data written before exit is read
            chunk = f.read()
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    entry = assembler.feed(raw.decode("utf-8", errors="replace"))
                    if entry is not None and _in_window(entry, None, until):
                        yield entry
                continue
            if finished:
                yield from assembler.flush()
                return
            if f.name == os.devnull and path.exists():
                return
            time.sleep(FOLLOW_POLL)


def format_entry(entry: LogEntry, timestamps: bool) -> str:
    """The text docker prints for one entry (newline included when the output had one)."""
    prefix = f"{docker_timestamp(entry.timestamp)} " if timestamps else ""
    return f"{prefix}{entry.text}" + ("\n" if entry.complete else "")


def docker_timestamp(text: str) -> str:
    """conmon's `…+00:00` as docker prints it with --timestamps (RFC 3339 nano, `Z` for UTC)."""
    return text[:-6] + "Z" if text.endswith("+00:00") else text
