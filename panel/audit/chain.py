"""Checking the hash chain (`audit_verify`) and archiving old events (`audit_archive`).

`verify` walks the events in seq order from the anchor (the last archived event, or the genesis
hash) and stops at the first problem:
1. a gap in seq: events were removed;
2. a prev_hash that is not the previous event's hash: this event was inserted (or re-linked);
3. a hash that does not match the event's content: this event was altered;
4. the last event is not the chain head: events were removed from, or added after, the end."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from panel.audit.forward import event_record
from panel.audit.models import (
    GENESIS,
    HASHED_FIELDS,
    AuditEvent,
    ChainHead,
    canonical_details,
    event_hash,
)


@dataclass
class Problem:
    kind: str  # "removed" | "inserted" | "altered" | "head"
    seq: int | None
    event_id: int | None
    message: str


@dataclass
class Verification:
    checked: int
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _head() -> ChainHead:
    return ChainHead.objects.filter(pk=1).first() or ChainHead(pk=1)


def _time_as_text() -> str:
    """SQL for created_at as text straight from the database (parsing it into a datetime and
    formatting it back would double the cost of a check); `time_text` accepts it."""
    return {"sqlite": "CAST(created_at AS TEXT)",
            "postgresql": """to_char(created_at AT TIME ZONE 'UTC',
                             'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""}.get(connection.vendor,
                                                                      "created_at")


def _hashed_time() -> str:
    """SQL for created_at in its hashed form, as `time_text` makes it."""
    if connection.vendor == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC
        return ("replace(created_at, ' ', 'T') || "
                "CASE WHEN instr(created_at, '.') > 0 THEN 'Z' ELSE '.000000Z' END")
    return _time_as_text()


def _canonical_text() -> str:
    """SQL for an event's canonical text (`canonical_bytes`, decoded), built by the database so
    that a check reads one column instead of eighteen and does no JSON encoding in Python.

    Both databases escape strings as Python's compact JSON does (quote, backslash, control
    characters; the rest as is); should they ever differ, `verify` recomputes the hash in Python
    before calling an event altered, so this is only ever a faster path."""
    columns = [_hashed_time() if f == "created_at" else f for f in HASHED_FIELDS[:-1]]
    if connection.vendor == "sqlite":
        # The last element is a quoted string (or null): rtrim strips only the array's "]".
        return f"rtrim(json_array({', '.join(columns)}), ']') || ',' || details_json || ']'"
    if connection.vendor == "postgresql":
        parts = [f"coalesce(to_json({c})::text, 'null')" for c in columns]
        return "'[' || " + " || ',' || ".join(parts) + " || ',' || details_json || ']'"
    return "NULL"


def _rows(chunk_size: int) -> Iterator[tuple[Any, ...]]:
    """(seq, prev_hash, hash, id, canonical text or None) of every event in seq order, read in
    keyset-paginated batches with a plain cursor (no model instances: this is the hot path)."""
    sql = (f"SELECT seq, prev_hash, hash, id, {_canonical_text()} "
           f"FROM {AuditEvent._meta.db_table} WHERE seq > %s ORDER BY seq LIMIT {int(chunk_size)}")
    last = -(2**62)
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [last])
            batch = cursor.fetchall()
            if not batch:
                return
            yield from batch
            last = batch[-1][0]


def _hashed_values(event_id: int) -> tuple[Any, ...]:
    """The HASHED_FIELDS of one event as stored (the time as text), for `event_hash`: the
    Python form of the check, for an event whose database-built text did not match."""
    columns = ", ".join(_time_as_text() if f == "created_at" else f for f in HASHED_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {AuditEvent._meta.db_table} WHERE id = %s",
                       [event_id])
        return tuple(cursor.fetchone())


def _action_of(event_id: int) -> str:
    return str(_hashed_values(event_id)[HASHED_FIELDS.index("action")])


def verify(chunk_size: int = 10_000,
           progress: Callable[[int, int], None] | None = None) -> Verification:
    """Check the whole chain (see the module docstring); names the first bad event.
    `progress(checked, total)` is called after every `chunk_size` events."""
    head = _head()
    total = max(head.seq - head.anchor_seq, 1)
    expected, previous = head.anchor_seq + 1, head.anchor_hash
    before_previous, previous_id = "", None
    checked = 0
    sha256 = hashlib.sha256
    for seq, prev_hash, stored, event_id, text in _rows(chunk_size):
        if seq > expected:
            gone = f"#{expected}" if seq == expected + 1 else f"#{expected}..#{seq - 1}"
            return Verification(checked, Problem(
                "removed", expected, None,
                f"event {gone} was removed: the log goes from #{expected - 1} to #{seq} "
                f"(event id {event_id})"))
        if seq == expected and prev_hash == before_previous and previous_id is not None:
            # This event follows the one before the previous: the previous one was slipped in
            # (later events renumbered to make room).
            return Verification(checked - 1, Problem(
                "inserted", seq - 1, previous_id,
                f"event #{seq - 1} (id {previous_id}) was inserted: event #{seq} follows the "
                f"event before it"))
        if seq < expected or prev_hash != previous:
            return Verification(checked, Problem(
                "inserted", seq, event_id,
                f"event #{seq} (id {event_id}, {_action_of(event_id)}) was inserted: it does "
                f"not follow event #{expected - 1} (its prev_hash is not that event's hash)"))
        if (text is None or sha256(text.encode()).hexdigest() != stored) and \
                event_hash(_hashed_values(event_id)) != stored:
            return Verification(checked, Problem(
                "altered", seq, event_id,
                f"event #{seq} (id {event_id}, {_action_of(event_id)}) was altered: its "
                "content does not match its hash"))
        before_previous, previous, previous_id = previous, stored, event_id
        expected += 1
        checked += 1
        if progress is not None and checked % chunk_size == 0:
            progress(checked, total)
    last = expected - 1
    if last != head.seq or previous != head.hash:
        if last > head.seq:
            message = (f"events after #{head.seq} were inserted: the chain head is #{head.seq} "
                       f"but the log ends at #{last}")
        else:
            message = (f"event #{last + 1}..#{head.seq} at the end was removed: the chain head "
                       f"is #{head.seq} but the log ends at #{last}")
        return Verification(checked, Problem("head", last + 1, None, message))
    return Verification(checked, None)


def _values_of(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["seq"], record["prev_hash"], datetime.fromisoformat(record["time"]),
            record["actor_id"], record["actor"], record["channel"], record["request_id"],
            record["source_address"] or "", record["action"], record["target_type"],
            record["target_id"], record["target_name"], record["team_id"], record["team"],
            record["project_id"], record["project"], record["outcome"],
            canonical_details(record["details"]))


def verify_archive(path: Path) -> Verification:
    """Check an archive file written by `archive`: its events chain from its anchor line."""
    checked = 0
    with open(path, encoding="utf-8") as source:
        header = json.loads(source.readline())
        expected, previous = header["anchor"]["seq"] + 1, header["anchor"]["hash"]
        for line in source:
            record = json.loads(line)
            values = _values_of(record)
            if record["seq"] != expected or record["prev_hash"] != previous:
                return Verification(checked, Problem(
                    "removed" if record["seq"] > expected else "inserted", record["seq"], None,
                    f"{path}: event #{record['seq']} does not follow #{expected - 1}"))
            if event_hash(values) != record["hash"]:
                return Verification(checked, Problem(
                    "altered", record["seq"], None, f"{path}: event #{record['seq']} was altered"))
            previous, expected = record["hash"], expected + 1
            checked += 1
    return Verification(checked, None)


def archive(before: datetime, directory: Path) -> tuple[int, Path | None]:
    """Move events older than `before` to a JSON-lines file in `directory` and keep the last
    one's seq and hash as the anchor, so the rest stays verifiable.

    The archived part is verified first (a broken chain is never archived away); the file is
    written and fsynced before the events are deleted, in one transaction with the anchor."""
    directory.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        ChainHead.objects.get_or_create(pk=1)
        ChainHead.objects.filter(pk=1).update(seq=F("seq"))  # serialise with appends
        head = ChainHead.objects.get(pk=1)
        last = AuditEvent.objects.filter(created_at__lt=before).order_by("-seq").first()
        if last is None:
            return 0, None
        result = verify()
        if result.problem is not None and (result.problem.seq or 0) <= last.seq:
            raise ValueError(f"not archiving a broken chain: {result.problem.message}")
        events = AuditEvent.objects.filter(seq__lte=last.seq).order_by("seq")
        path = directory / f"audit-{head.anchor_seq + 1:012d}-{last.seq:012d}.jsonl"
        temporary = path.with_suffix(".partial")
        count = 0
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(json.dumps({"anchor": {"seq": head.anchor_seq,
                                             "hash": head.anchor_hash}}) + "\n")
            for event in events.iterator(chunk_size=5000):
                out.write(json.dumps(event_record(event), ensure_ascii=False,
                                     separators=(",", ":")) + "\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        ChainHead.objects.filter(pk=1).update(anchor_seq=last.seq, anchor_hash=last.hash,
                                              anchor_file=str(path))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE seq <= %s",
                           [last.seq])
        return count, path


__all__ = ["GENESIS", "Problem", "Verification", "archive", "verify", "verify_archive"]
