"""The one helper producers use to push live changes to browsers: `emit()`.

Service functions call it inside their transaction; the message leaves on commit (so a rolled-back
change is never shown) to the Channels groups of everyone who may see the object:

- ``platform``: platform administrators see everything;
- ``project-<id>``: members of the team owning the project (any role may view status);
- ``actor-<hash>``: the person who started an operation outside any project (their own);
- ``hosts``: every signed-in user (hosts are visible to all).

Groups are named ``<kind>-<id>`` (CONVENTIONS.md 7). A Redis outage loses the push, never the
change: pages reload their state on reconnect."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

PLATFORM_GROUP = "platform"
HOSTS_GROUP = "hosts"
MESSAGE_TYPE = "live.event"


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def actor_group(name: str) -> str:
    return "actor-" + hashlib.sha256(name.encode()).hexdigest()[:32]


def groups_for(project_id: int | None, actor_name: str = "", everyone: bool = False) -> list[str]:
    """The groups that may see an object of `project_id` (see the module docstring)."""
    if everyone:
        return [HOSTS_GROUP]
    groups = [PLATFORM_GROUP]
    if project_id is not None:
        groups.append(project_group(project_id))
    elif actor_name:
        groups.append(actor_group(actor_name))
    return groups


def send_now(groups: list[str], event: dict[str, Any]) -> None:
    """Send `event` to `groups` at once (use `emit`, which waits for the commit)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": MESSAGE_TYPE, "event": event}

    async def send_all() -> None:  # one event loop (and layer connection) for every group
        for group in groups:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception as exc:  # the change is committed; a lost push only delays the page
        log.warning("live event %s not pushed: %s", event.get("type"), exc)


def emit(event: dict[str, Any], project_id: int | None = None, actor_name: str = "",
         everyone: bool = False) -> None:
    """Push `event` (a JSON-able dict with a "type") once the current transaction commits."""
    groups = groups_for(project_id, actor_name, everyone)
    transaction.on_commit(lambda: send_now(groups, event))


# --- the payloads, one shape per kind, shared by the producers --------------------------------

def container_event(container: Any) -> dict[str, Any]:
    return {"type": "container", "id": container.pk, "name": container.name,
            "status": container.status or "pending", "health": container.health,
            "exit_code": container.exit_code, "desired_state": container.desired_state,
            "restart_count": container.restart_count, "stop_note": container.stop_note,
            "host": container.host.name if container.host_id and container.host else None,
            "removed": container.status == "removed"}


def emit_container(container: Any) -> None:
    emit(container_event(container), container.project_id)


def operation_event(operation: Any) -> dict[str, Any]:
    return {"type": "operation", "id": str(operation.pk), "kind": operation.kind,
            "status": operation.status, "progress": round(float(operation.progress), 4),
            "message": operation.message[:500], "target_type": operation.target_type,
            "target_id": operation.target_id, "target_name": operation.target_name,
            "host": operation.host_name,
            # Pushes of two commits may reach a browser in either order; the row's save time
            # (saves of one operation are serialised by its row lock) lets it keep the newest.
            "version": int(operation.updated_at.timestamp() * 1_000_000)
            if operation.updated_at else 0}


def emit_operation(operation: Any) -> None:
    emit(operation_event(operation), operation.project_id, operation.actor_name)


def emit_host(host: Any) -> None:
    emit({"type": "host", "id": host.pk, "name": host.name, "status": host.current_status()},
         everyone=True)
