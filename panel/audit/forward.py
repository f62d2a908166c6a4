"""Optional forwarding of committed audit events, one JSON line each, to a SIEM.

BERTH_AUDIT_FORWARD selects the sink: "" (off), "file:/path/audit.jsonl" (appended),
"syslog" (the local /dev/log), "syslog:/path/to/socket" or "syslog://host:514" (UDP). Events are
sent after commit, so a rolled-back change is never forwarded; a sink that fails is logged and
never fails the change."""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from typing import Any

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)
_lock = threading.Lock()
_syslog: dict[str, logging.Handler] = {}


def event_record(event: Any) -> dict[str, Any]:
    """The JSON form of an event (export, forwarding, archives)."""
    return {
        "seq": event.seq, "time": event.created_at.isoformat(), "actor_id": event.actor_id,
        "actor": event.actor_name, "channel": event.channel, "request_id": event.request_id,
        "source_address": event.source_address or None, "action": event.action,
        "target_type": event.target_type, "target_id": event.target_id,
        "target_name": event.target_name, "team_id": event.team_id, "team": event.team_name,
        "project_id": event.project_id, "project": event.project_name,
        "outcome": event.outcome, "details": event.details, "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _syslog_handler(target: str) -> logging.Handler:
    handler = _syslog.get(target)
    if handler is None:
        if target.startswith("//"):
            host, _, port = target[2:].partition(":")
            address: Any = (host, int(port or 514))
        else:
            address = target or "/dev/log"
        handler = logging.handlers.SysLogHandler(
            address=address, facility=logging.handlers.SysLogHandler.LOG_AUTH)
        handler.setFormatter(logging.Formatter("berth-audit: %(message)s"))
        _syslog[target] = handler
    return handler


def forward_line(sink: str, line: str) -> None:
    """Write one JSON line to `sink` (see the module docstring)."""
    kind, _, target = sink.partition(":")
    if kind == "file":
        with _lock, open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    elif kind == "syslog":
        record = logging.LogRecord("berth.audit", logging.INFO, __file__, 0, line, None, None)
        _syslog_handler(target).emit(record)
    else:
        raise ValueError(f"BERTH_AUDIT_FORWARD={sink!r}: use file:/PATH, syslog, "
                         "syslog:/SOCKET or syslog://HOST:PORT")


def forward_on_commit(event: Any) -> None:
    sink = getattr(settings, "BERTH_AUDIT_FORWARD", "")
    if not sink:
        return
    line = json.dumps(event_record(event), ensure_ascii=False, separators=(",", ":"))

    def send() -> None:
        try:
            forward_line(sink, line)
        except (OSError, ValueError) as exc:
            log.error("audit forwarding to %s failed: %s", sink, exc)

    transaction.on_commit(send)
