"""Who acts (`Actor`) and the one writer of audit events (`record_event`).

Every service function takes an explicit `actor` and calls `record_event` inside its own
transaction, so the event commits or rolls back with the change it describes."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from panel.audit.models import AuditEvent

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


def record_event(actor: Actor, action: str, target: models.Model | None = None, *,
                 target_type: str = "", target_id: str = "", target_name: str = "",
                 outcome: str = "succeeded", before: dict | None = None,
                 after: dict | None = None, **details: Any) -> AuditEvent:
    """Write one audit event for `action` (e.g. "container.stop") on `target`.

    Must run inside the transaction of the change it records (it refuses otherwise), so the
    event and the change commit together. `before`/`after` and any other details are redacted."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("record_event must run inside the change's transaction")
    if target is not None:
        target_type = target_type or target._meta.model_name or ""
        target_id = target_id or str(target.pk)
        target_name = target_name or str(getattr(target, "name", "") or "")
    payload: dict[str, Any] = dict(details)
    if before is not None:
        payload["before"] = before
    if after is not None:
        payload["after"] = after
    return AuditEvent.objects.create(
        actor_id=actor.user_id, actor_name=actor.name[:150], channel=actor.channel,
        request_id=actor.request_id[:64], source_address=actor.source_address,
        action=action, target_type=target_type, target_id=str(target_id)[:64],
        target_name=target_name[:255], outcome=outcome, details=redact(payload),
    )
