"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Seconds `fn` takes (monotonic clock)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "runs": len(samples),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 3) if theirs else float("nan")


def emit(record: dict[str, Any]) -> None:
    json.dump(record, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def insert_chained_events(numbers: Iterable[int],
                          fields_of: Callable[[int], dict[str, Any]]) -> float:
    """Bulk insert one audit event per number, chained after the current head as
    `record_event` would chain them (seq, prev_hash, hash); `fields_of(n)` gives event n's other
    fields, `details` as a dict. Needs Django set up; returns the seconds taken."""
    from django.db import transaction

    from panel.audit.models import AuditEvent, ChainHead, canonical_details, event_hash

    head = ChainHead.objects.get(pk=1)
    seq, previous = head.seq, head.hash
    began = time.perf_counter()
    batch: list[AuditEvent] = []
    with transaction.atomic():
        for number in numbers:
            seq += 1
            fields = fields_of(number)
            details = fields.pop("details")
            event = AuditEvent(seq=seq, prev_hash=previous,
                               details_json=canonical_details(details), **fields)
            event.hash = previous = event_hash(event.hashed_values())
            batch.append(event)
            if len(batch) == 20_000:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        if batch:
            AuditEvent.objects.bulk_create(batch)
        ChainHead.objects.filter(pk=1).update(seq=seq, hash=previous)
    return time.perf_counter() - began
