"""Reading conmon's k8s-file logs: `TIMESTAMP STREAM F|P TEXT` per line.

`P` marks a partial line (conmon splits long lines and writes unterminated output as it comes);
the entry continues on the next `P`/`F` record of the same stream. Entries are yielded with the
timestamp of their first record, in the order their last (`F`) record was written.

Logs can be large (a chatty container writes millions of lines), so nothing here holds a whole
log in memory: `LogReader` streams the file in large blocks as bytes, and with a tail it starts
near the end of the file (found by scanning backwards) instead of reading it all. `read_entries`
and `follow` give decoded `LogEntry` objects for callers that want text.
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from runtime.containers.options import parse_duration
from runtime.errors import InvalidArgument

FOLLOW_POLL = 0.05
READ_BLOCK = 1 << 20  # forward reads
BACK_BLOCK = 1 << 16  # backward reads (tail): most tails need one or two of these


@dataclass
class LogEntry:
    timestamp: str  # as conmon wrote it (RFC 3339 with nanoseconds)
    stream: str  # "stdout" or "stderr"
    text: str  # without the trailing newline
    complete: bool = True  # False when the output ended without a newline

    @property
    def time(self) -> float:
        return timestamp_seconds(self.timestamp)


# One entry as bytes straight from the file: (timestamp, stream, text, complete).
RawEntry = tuple[bytes, bytes, bytes, bool]


def decode(raw: RawEntry) -> LogEntry:
    """A raw entry as a `LogEntry` (invalid UTF-8 replaced)."""
    timestamp, stream, text, complete = raw
    return LogEntry(timestamp.decode(errors="replace"), stream.decode(errors="replace"),
                    text.decode("utf-8", errors="replace"), complete)


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
    """Joins partial records into whole entries, per stream (text lines; the agent's log
    shipper feeds it as it tails)."""

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


class _Window:
    """The --since/--until test on raw timestamps (the seconds part is parsed once per
    distinct second: consecutive entries mostly share it)."""

    def __init__(self, since: float | None, until: float | None):
        self.since, self.until = since, until
        self._key = b""
        self._base = 0.0

    def __call__(self, timestamp: bytes) -> bool:
        zone = _zone_start(timestamp)
        key = timestamp[:19] + timestamp[zone:]
        if key != self._key:
            self._base = timestamp_seconds(key.decode(errors="replace"))
            self._key = key
        fraction = timestamp[19:zone]
        moment = self._base + (float(b"0" + fraction) if fraction.startswith(b".") else 0.0)
        return ((self.since is None or moment >= self.since)
                and (self.until is None or moment <= self.until))


def _zone_start(timestamp: bytes) -> int:
    """Index of the zone suffix (`Z` or `±hh:mm`) of an RFC 3339 timestamp."""
    if timestamp.endswith(b"Z"):
        return len(timestamp) - 1
    return len(timestamp) - 6 if len(timestamp) > 25 and timestamp[-6] in b"+-" else len(
        timestamp)


def _assemble(lines: Iterable[bytes], pending: dict[bytes, list[bytes]],
              window: _Window | None) -> Iterator[RawEntry]:
    """Whole entries from complete records (`pending` carries partial ones across calls)."""
    for line in lines:
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        stream = parts[1]
        text = parts[3] if len(parts) == 4 else b""
        if pending and stream in pending:
            held = pending[stream]
            held.append(text)
            if parts[2] == b"P":
                continue
            del pending[stream]
            timestamp, text = held[0], b"".join(held[1:])
        elif parts[2] == b"P":
            pending[stream] = [parts[0], text]
            continue
        else:
            timestamp = parts[0]
        if window is None or window(timestamp):
            yield timestamp, stream, text, True


class LogReader:
    """The entries of one log file, streamed (iterate it for `RawEntry` tuples).

    Only whole records count: a last line without its newline (conmon is still writing it) and
    partial entries not yet finished are left for `follow`, which continues at `offset` (the
    byte position after the last whole record read, valid once iteration ends).

    With `tail`, only the last `tail` entries (after the time window) are produced, and only
    the end of the file is read: see `_tail_start`."""

    def __init__(self, path: Path, since: float | None = None, until: float | None = None,
                 tail: int | None = None):
        self.path = Path(path)
        self.window = _Window(since, until) if since is not None or until is not None else None
        self.tail = tail
        self.offset = 0

    def __iter__(self) -> Iterator[RawEntry]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            end = _last_record_end(f)
            self.offset = end
            if self.tail is None:
                yield from self._forward(f, 0, end)
            elif self.tail > 0:
                yield from self._tail(f, end)

    def _forward(self, f: BinaryIO, start: int, end: int) -> Iterator[RawEntry]:
        pending: dict[bytes, list[bytes]] = {}
        f.seek(start)
        position, rest = start, b""
        while position < end:
            chunk = f.read(min(READ_BLOCK, end - position))
            if not chunk:
                break
            position += len(chunk)
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield from _assemble(data[:cut].split(b"\n"), pending, self.window)

    def _tail(self, f: BinaryIO, end: int) -> Iterator[RawEntry]:
        """The last `tail` entries: start far enough back for that many (more when the time
        window drops some), never reading the whole file for a short tail."""
        assert self.tail is not None
        wanted = self.tail
        while True:
            start = _tail_start(f, end, wanted)
            kept: deque[RawEntry] = deque(self._forward(f, start, end), maxlen=self.tail)
            if len(kept) >= self.tail or start == 0:
                yield from kept
                return
            wanted *= 4


def _last_record_end(f: BinaryIO) -> int:
    """The byte position just after the file's last newline (0 if it has none)."""
    size = f.seek(0, os.SEEK_END)
    position = size
    while position > 0:
        step = min(BACK_BLOCK, position)
        f.seek(position - step)
        block = f.read(step)
        index = block.rfind(b"\n")
        if index >= 0:
            return position - step + index + 1
        position -= step
    return 0


def _lines_backwards(f: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(start position, record) of each whole record before `end` (just after a newline),
    last one first."""
    position = end
    buffer = b""  # from `position` to the start of the last record produced, newline included
    while position > 0:
        step = min(BACK_BLOCK, position)
        position -= step
        f.seek(position)
        buffer = f.read(step) + buffer
        lines = buffer.split(b"\n")
        # lines[-1] is b"" (buffer ends with a newline); lines[0] may begin before `position`
        offset = len(buffer) - 1
        for line in reversed(lines[1:-1]):
            offset -= len(line)
            yield position + offset, line
            offset -= 1
        buffer = lines[0] + b"\n"
    if end > 0:
        yield 0, buffer[:-1]


def _tail_start(f: BinaryIO, end: int, entries: int) -> int:
    """A record boundary from which reading to `end` yields at least the last `entries` whole
    entries, and no entry cut short.

    Scanning records backwards from `end`:
    1. every `F` record ends one entry; the first `entries` of them seen are the wanted ones;
       a wanted entry stays open until the previous `F` of its stream turns up (it starts
       right after that one);
    2. once all are counted and none is open, the position after the current `F` record is
       a candidate: clean for its stream, and clean for every other stream seen after it if
       that stream's nearest earlier record is an `F` too;
    3. a `P` there means an entry crosses the candidate: drop it and take the next `F` that
       qualifies. The file's start is always clean."""
    counted = 0
    open_streams: set[bytes] = set()
    seen: set[bytes] = set()
    candidate, unknown = -1, set()
    for position, line in _lines_backwards(f, end):
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        stream, final = parts[1], parts[2] != b"P"
        if candidate >= 0 and stream in unknown:
            unknown.discard(stream)
            if not final:
                candidate = -1
            elif not unknown:
                return candidate
        if final:
            open_streams.discard(stream)
            if counted < entries:
                counted += 1
                open_streams.add(stream)
            if candidate < 0 and counted >= entries and not open_streams:
                candidate, unknown = position + len(line) + 1, seen - {stream}
                if not unknown:
                    return candidate
        seen.add(stream)
    return 0


def read_entries(path: Path, since: float | None = None, until: float | None = None,
                 tail: int | None = None) -> tuple[list[LogEntry], int]:
    """The log's entries (filtered by time, the last `tail` of them) and the byte offset
    where reading stopped, for `follow` to continue from. Holds them all in memory: stream
    large logs with `LogReader` instead."""
    reader = LogReader(path, since=since, until=until, tail=tail)
    # Millions of new objects would set off the cyclic collector over and over (3x the time);
    # none of them can form a cycle, so it is paused while the list is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        entries = [decode(raw) for raw in reader]
    finally:
        if collecting:
            gc.enable()
    return entries, reader.offset


def follow_raw(path: Path, offset: int, stopped: Callable[[], bool],
               until: float | None = None) -> Iterator[list[RawEntry]]:
    """Batches of entries appended after `offset` as they arrive (one batch per read), until
    `stopped()` is true and the file has been read to its end (so nothing written before the
    exit is missed); output left without a newline comes last, marked incomplete."""
    pending: dict[bytes, list[bytes]] = {}
    window = _Window(None, until) if until is not None else None
    buffer = b""
    with open(path, "rb") if path.exists() else open(os.devnull, "rb") as f:
        f.seek(offset)
        while True:
            finished = stopped()  # check before reading: data written before exit is read
            chunk = f.read(READ_BLOCK)
            if chunk:
                buffer += chunk
                cut = buffer.rfind(b"\n")
                if cut >= 0:
                    lines, buffer = buffer[:cut].split(b"\n"), buffer[cut + 1:]
                    batch = list(_assemble(lines, pending, window))
                    if batch:
                        yield batch
                continue
            if finished:
                left: list[RawEntry] = sorted(
                    (held[0], stream, b"".join(held[1:]), False)
                    for stream, held in pending.items())
                left = [raw for raw in left if window is None or window(raw[0])]
                if left:
                    yield left
                return
            if f.name == os.devnull and path.exists():
                return
            time.sleep(FOLLOW_POLL)


def follow(path: Path, offset: int, stopped: Callable[[], bool],
           until: float | None = None) -> Iterator[LogEntry]:
    """Entries appended after `offset` as they arrive, until `stopped()` is true and the file
    has been read to its end (so nothing written before the exit is missed)."""
    for batch in follow_raw(path, offset, stopped, until):
        for raw in batch:
            yield decode(raw)


def format_entry(entry: LogEntry, timestamps: bool) -> str:
    """The text docker prints for one entry (newline included when the output had one)."""
    prefix = f"{docker_timestamp(entry.timestamp)} " if timestamps else ""
    return f"{prefix}{entry.text}" + ("\n" if entry.complete else "")


def format_raw(raw: RawEntry, timestamps: bool) -> bytes:
    """`format_entry` for a raw entry, as bytes (the container's bytes passed through)."""
    timestamp, _, text, complete = raw
    if timestamps:
        stamp = timestamp[:-6] + b"Z" if timestamp.endswith(b"+00:00") else timestamp
        text = stamp + b" " + text
    return text + b"\n" if complete else text


def docker_timestamp(text: str) -> str:
    """conmon's `…+00:00` as docker prints it with --timestamps (RFC 3339 nano, `Z` for UTC)."""
    return text[:-6] + "Z" if text.endswith("+00:00") else text
