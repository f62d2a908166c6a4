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
from django.db.models import F
from django.utils import timezone

from panel.audit.forward import forward_on_commit
from panel.audit.models import AuditEvent, ChainHead, canonical_details

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
    """Benchmark seam only: run services without writing audit events, to measure what the
    audit write costs. Never used by the app."""
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
    if _suspended:
        return event
    return append(event)


def append(event: AuditEvent) -> AuditEvent:
    """Chain `event` onto the log and save it (inside the caller's transaction).

    1. Increment the head row's seq with an UPDATE first: on PostgreSQL that takes the row lock,
       on SQLite the database write lock, so concurrent appends queue here and never fork;
    2. read the head (own update: the new seq, the previous event's hash);
    3. hash the event with that prev_hash and insert it (`seq` is unique, a second guard);
    4. store its hash in the head; forward it to the SIEM sink after commit."""
    updated = ChainHead.objects.filter(pk=1).update(seq=F("seq") + 1)
    if not updated:
        ChainHead.objects.get_or_create(pk=1)
        ChainHead.objects.filter(pk=1).update(seq=F("seq") + 1)
    seq, prev_hash = ChainHead.objects.filter(pk=1).values_list("seq", "hash").get()
    event.seq, event.prev_hash = seq, prev_hash
    event.hash = event.compute_hash()
    event.save()
    ChainHead.objects.filter(pk=1).update(hash=event.hash)
    forward_on_commit(event)
    return event
