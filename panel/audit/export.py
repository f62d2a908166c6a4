"""Exports of a filtered set of audit events as CSV or JSON lines, streamed in seq order (the
REST API's `?format=` and the audit page's export buttons)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from panel.audit.forward import event_record

CSV_COLUMNS = ("seq", "time", "actor", "channel", "source_address", "request_id", "action",
               "target_type", "target_id", "target_name", "team", "project", "outcome",
               "details", "hash")
KINDS = ("csv", "jsonl")


def drain(buffer: io.StringIO) -> str:
    """What `buffer` holds, emptying it."""
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def csv_rows(events: QuerySet) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield drain(buffer)  # the header, even when no row follows
    for event in events.iterator(chunk_size=2000):
        record = event_record(event)
        writer.writerow([json.dumps(record[c], sort_keys=True) if c == "details"
                         else (record[c] if record[c] is not None else "")
                         for c in CSV_COLUMNS])
        yield drain(buffer)


def jsonl_rows(events: QuerySet) -> Iterator[str]:
    for event in events.iterator(chunk_size=2000):
        yield json.dumps(event_record(event), ensure_ascii=False) + "\n"


def export_response(events: QuerySet, kind: str) -> StreamingHttpResponse:
    """Every event of `events` as a download of `kind` ("csv" or "jsonl")."""
    events = events.order_by("seq")
    stamp = f"berth-audit-{datetime.now():%Y%m%d-%H%M%S}"
    if kind == "csv":
        response = StreamingHttpResponse(csv_rows(events), content_type="text/csv")
    else:
        response = StreamingHttpResponse(jsonl_rows(events), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{stamp}.{kind}"'
    return response
