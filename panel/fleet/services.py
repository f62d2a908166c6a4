"""Service functions of the fleet: the only writers of Host rows.

Heartbeats are frequent (every few seconds per host), so `record_heartbeat` audits only what
changes the fleet: a host's registration, its return after being down, and label changes. The
down transition is audited by `check_hosts`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from panel.audit.services import Actor, record_event
from panel.fleet.dispatch import send_on_commit
from panel.fleet.models import DOWN, UP, Host
from panel.live.emit import emit_host
from runtime.containers.options import NAME_PATTERN


class InvalidReport(ValueError):
    """An agent's report that cannot be recorded (malformed host name or payload)."""


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def record_heartbeat(actor: Actor, host_name: str, inventory: dict[str, Any],
                     now: datetime | None = None) -> Host:
    """Register `host_name` or refresh it: inventory, labels, last heartbeat, status up.

    A new host and a host coming back are asked for a full snapshot (on commit), which also
    lets the panel remove copies of containers that were moved away while it was down."""
    if not isinstance(host_name, str) or not NAME_PATTERN.match(host_name) \
            or len(host_name) > 128:
        raise InvalidReport(f"host name {host_name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if not isinstance(inventory, dict):
        raise InvalidReport("inventory must be an object")
    now = now or timezone.now()
    labels = inventory.get("labels") or {}
    if not isinstance(labels, dict):
        raise InvalidReport("inventory.labels must be an object")
    labels = {str(k): str(v) for k, v in labels.items()}
    fields = {"inventory": inventory, "labels": labels, "cpus": _int(inventory.get("cpus")),
              "memory": _int(inventory.get("memory"))}
    try:
        with transaction.atomic():
            return _record_heartbeat(actor, host_name, fields, now)
    except IntegrityError:
        # Two first heartbeats of one new host raced; the other one created the row.
        with transaction.atomic():
            return _record_heartbeat(actor, host_name, fields, now)


def _record_heartbeat(actor: Actor, host_name: str, fields: dict[str, Any],
                      now: datetime) -> Host:
    host = Host.objects.select_for_update().filter(name=host_name).first()
    if host is None:
        host = Host.objects.create(name=host_name, status=UP, last_heartbeat=now, **fields)
        record_event(actor, "host.register", host,
                     after={"labels": host.labels, "cpus": host.cpus, "memory": host.memory})
        send_on_commit(host.name, "snapshot")
        return host
    if host.last_heartbeat and host.last_heartbeat > now:
        return host  # an older heartbeat delivered late: nothing newer to record
    was_down = host.status == DOWN
    if host.labels != fields["labels"]:
        record_event(actor, "host.labels", host, before={"labels": host.labels},
                     after={"labels": fields["labels"]})
    if was_down:
        record_event(actor, "host.up", host, before={"status": DOWN}, after={"status": UP},
                     down_since=host.down_since.isoformat() if host.down_since else None)
        send_on_commit(host.name, "snapshot")
    for key, value in fields.items():
        setattr(host, key, value)
    host.status, host.down_since, host.last_heartbeat = UP, None, now
    host.save()
    if was_down:
        emit_host(host)  # to browsers, on commit
    return host


@transaction.atomic
def check_hosts(actor: Actor, now: datetime | None = None) -> list[Host]:
    """Mark hosts whose heartbeat is older than BERTH_HOST_DOWN_AFTER as down (each once, by a
    conditional update, so concurrent checks record the transition once). Returns them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BERTH_HOST_DOWN_AFTER)
    marked = []
    for host in Host.objects.filter(status=UP, last_heartbeat__lt=cutoff):
        claimed = Host.objects.filter(pk=host.pk, status=UP, last_heartbeat__lt=cutoff).update(
            status=DOWN, down_since=now, updated_at=now)
        if claimed == 1:
            record_event(actor, "host.down", host, before={"status": UP},
                         after={"status": DOWN},
                         last_heartbeat=host.last_heartbeat.isoformat()
                         if host.last_heartbeat else None)
            host.status, host.down_since = DOWN, now
            emit_host(host)  # to browsers, on commit
            marked.append(host)
    return marked
