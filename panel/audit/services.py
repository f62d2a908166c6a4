"""Who acts (`Actor`) and the one writer of audit events (`record_event`).

Every service function takes an explicit `actor` and calls `record_event` inside its own
transaction, so the event commits or rolls back with the change it describes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from panel.audit.forward import forward_on_commit
from panel.audit.models import HASHED_FIELDS, AuditEvent, ChainHead, canonical_details

REDACTED = "[redacted]"
# Keys whose values never reach an audit event, at any depth of `details`.
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|api_?key", re.IGNORECASE)
# Keys that are safe even though they match (lists of secret *names*).
_SAFE_KEYS = {"secrets", "secret_names"}


@dataclass(frozen=True)
class Actor:
    """Who or what makes a change, and through which channel.

    `user` is a Django user for people (web, api); agents and the system have none."""

    name: str
    channel: str
    user_id: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    source_address: str | None = None

    @classmethod
    def system(cls, what: str = "system") -> Actor:
        """The panel itself: reconciliation, rescheduling, host-down detection."""
        return cls(name=what, channel="system")

    @classmethod
    def agent(cls, host_name: str) -> Actor:
        """A host's agent reporting observed state."""
        return cls(name=f"agent:{host_name}", channel="agent")

    @classmethod
    def from_user(cls, user: Any, channel: str = "cli") -> Actor:
        """A person acting outside a request (management commands, tests)."""
        return cls(name=user.get_username(), channel=channel, user_id=user.pk)

    @classmethod
    def from_request(cls, request: Any, channel: str) -> Actor:
        """The signed-in user of `request` (RequestIdMiddleware supplies the request id)."""
        user = request.user
        return cls(
            name=user.get_username() if user.is_authenticated else "anonymous",
            channel=channel,
            user_id=user.pk if user.is_authenticated else None,
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
            source_address=request.META.get("REMOTE_ADDR") or None,
        )


def redact(value: Any) -> Any:
    """`value` with every secret-looking key's value replaced by REDACTED, recursively."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and k not in _SAFE_KEYS
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


_suspended = False


@contextmanager
def writes_suspended() -> Iterator[None]:
    """Benchmark seam only: run services without auditing (no event built, none written), to
    measure what the audit costs. Never used by the app."""
    global _suspended
    _suspended = True
    try:
        yield
    finally:
        _suspended = False


def _scope_of(target: Any, project: Any, team: Any) -> tuple[Any, Any]:
    """The (team, project) an event belongs to, from `target` unless given."""
    from panel.access.models import Project, Team

    if target is not None and project is None:
        if isinstance(target, Project):
            project = target
        else:
            candidate = getattr(target, "project", None)
            project = candidate if isinstance(candidate, Project) else None
    if team is None:
        if isinstance(target, Team):
            team = target
        elif project is not None:
            team = project.team
        elif target is not None:
            candidate = getattr(target, "team", None)
            team = candidate if isinstance(candidate, Team) else None
    return team, project


def record_event(actor: Actor, action: str, target: models.Model | None = None, *,
                 target_type: str = "", target_id: str = "", target_name: str = "",
                 outcome: str = "succeeded", before: dict | None = None,
                 after: dict | None = None, project: Any = None, team: Any = None,
                 **details: Any) -> AuditEvent:
    """Write one audit event for `action` (e.g. "container.stop") on `target`.

    Must run inside the transaction of the change it records (it refuses otherwise), so the
    event and the change commit together. `before`/`after` and any other details are redacted.
    The team and project come from `target` (its `project`/`team`) unless given."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("record_event must run inside the change's transaction")
    if _suspended:
        return AuditEvent(action=action)
    if target is not None:
        target_type = target_type or target._meta.model_name or ""
        target_id = target_id or str(target.pk if target.pk is not None else "")
        target_name = target_name or str(getattr(target, "name", "") or "")
    team, project = _scope_of(target, project, team)
    payload: dict[str, Any] = dict(details)
    if before is not None:
        payload["before"] = before
    if after is not None:
        payload["after"] = after
    event = AuditEvent(
        created_at=timezone.now(), actor_id=actor.user_id, actor_name=actor.name[:150],
        channel=actor.channel, request_id=actor.request_id[:64],
        source_address=(actor.source_address or "")[:64], action=action[:64],
        target_type=target_type[:32], target_id=str(target_id)[:64],
        target_name=target_name[:255], team_id=team.pk if team else None,
        team_name=team.name if team else "", project_id=project.pk if project else None,
        project_name=project.name if project else "", outcome=outcome,
        details_json=canonical_details(redact(payload)))
    return append(event)


# The columns an append inserts: the hashed ones, then the hash.
_INSERTED = (*HASHED_FIELDS, "hash")
_CREATED_AT = _INSERTED.index("created_at")
_EVENTS, _HEAD = AuditEvent._meta.db_table, ChainHead._meta.db_table
# Raw SQL, not the ORM: building these statements through querysets cost far more than running
# them (0.7 ms an event on SQLite for four ORM statements, under 0.1 ms for these three).
# RETURNING needs SQLite >= 3.35 (Debian 12 has 3.40) or PostgreSQL.
_ADVANCE_HEAD = f'UPDATE "{_HEAD}" SET "seq" = "seq" + 1 WHERE "id" = 1 RETURNING "seq", "hash"'
_COLUMNS = ", ".join(f'"{column}"' for column in _INSERTED)
_PLACEHOLDERS = ", ".join(["%s"] * len(_INSERTED))
_INSERT_EVENT = f'INSERT INTO "{_EVENTS}" ({_COLUMNS}) VALUES ({_PLACEHOLDERS}) RETURNING "id"'
_SET_HEAD_HASH = f'UPDATE "{_HEAD}" SET "hash" = %s WHERE "id" = 1'


def append(event: AuditEvent) -> AuditEvent:
    """Chain `event` onto the log and save it (inside the caller's transaction), in three
    statements:

    1. advance the head row and read it back in one UPDATE … RETURNING: on PostgreSQL that takes
       the row lock (a concurrent append waits, then sees this one's seq and hash), on SQLite
       the write lock (held from BEGIN IMMEDIATE anyway), so concurrent appends queue here and
       never fork; the new seq and the previous event's hash come back;
    2. hash the event with them and insert it (`seq` is unique, a second guard);
    3. store its hash in the head; forward it to the SIEM sink after commit."""
    connection = transaction.get_connection()
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE_HEAD)
        row = cursor.fetchone()
        if row is None:  # a database with no event yet
            ChainHead.objects.get_or_create(pk=1)
            cursor.execute(_ADVANCE_HEAD)
            row = cursor.fetchone()
        event.seq, event.prev_hash = row
        event.hash = event.compute_hash()
        cursor.execute(_INSERT_EVENT, _insert_params(event, connection))
        event.pk = cursor.fetchone()[0]
        cursor.execute(_SET_HEAD_HASH, [event.hash])
    event._state.adding, event._state.db = False, connection.alias
    forward_on_commit(event)
    return event


def _insert_params(event: AuditEvent, connection: Any) -> list[Any]:
    params = [getattr(event, column) for column in _INSERTED]
    params[_CREATED_AT] = connection.ops.adapt_datetimefield_value(event.created_at)
    return params
