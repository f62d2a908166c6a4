"""Service functions that record what agents report: container events, snapshots, operation
progress. They are the only writers of observed state.

Reports may arrive twice or out of order (acks_late, retries, several control workers). Each
container state carries an order key, `observed_key(state)` = generation | created | started |
phase, compared as a string; a report is written only by the conditional update
`filter(observed_key__lte=key)`, so an older report can never overwrite a newer one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from panel.audit.services import Actor, record_event
from panel.fleet.dispatch import send_on_commit
from panel.fleet.models import Host
from panel.live.emit import emit_container, emit_operation
from panel.workloads.models import Container, Image, Network, Operation, Volume

log = logging.getLogger(__name__)

# Order of a container's life within one start: created, running, exited, removed.
_PHASES = {"created": 0, "running": 1, "restarting": 1, "paused": 1, "removing": 2,
           "exited": 2, "dead": 2, "removed": 3}
_OBSERVED_FIELDS = ("status", "health", "exit_code", "oom_killed", "restart_count", "host")


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time with up to nanoseconds (the runtime's format); the zero time is None."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    body = text.strip().replace("Z", "+00:00")
    zone = ""
    for sign in ("+", "-"):
        index = body.rfind(sign)
        if index > 10:
            body, zone = body[:index], body[index:]
            break
    if "." in body:
        seconds, fraction = body.split(".", 1)
        body = f"{seconds}.{fraction[:6].ljust(6, '0')}"
    try:
        moment = datetime.fromisoformat(body + (zone or "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC)


def _stamp(moment: datetime | None) -> str:
    # No time sorts before every time ("" would sort after digits: a "created" report without
    # a start time would then outrank the "started" report that follows it).
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") if moment else "0000-00-00T00:00:00.000000"


def observed_key(state: dict[str, Any], status: str | None = None) -> str:
    """The sortable order key of a reported state (see the module docstring)."""
    generation = _int(state.get("generation"))
    phase = _PHASES.get(status or str(state.get("status") or ""), 0)
    return (f"{generation:010d}|{_stamp(parse_time(state.get('created')))}|"
            f"{_stamp(parse_time(state.get('started_at')))}|{phase}")


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _observed(container: Container) -> dict[str, Any]:
    return {"status": container.status, "health": container.health,
            "exit_code": container.exit_code, "oom_killed": container.oom_killed,
            "restart_count": container.restart_count,
            "host": container.host.name if container.host else None,
            **({"stop_note": container.stop_note} if container.stop_note else {})}


def _remove_stray(actor: Actor, host: Host, uid: str, name: str, why: str) -> None:
    """Ask `host` to remove a copy the panel does not want there (moved away, or deleted)."""
    record_event(actor, "container.remove_stray", target_type="container", target_id=uid,
                 target_name=name, host=host.name, reason=why)
    send_on_commit(host.name, "container_action", uid, "remove", {"force": True}, None)


def _find(uid: str) -> Container | None:
    return Container.objects.select_related("host").filter(uid=uid).first() \
        if _is_uuid(uid) else None


def _apply_state(actor: Actor, host: Host, state: dict[str, Any], event: str,
                 now: datetime) -> str:
    """Record one container's reported state; returns what happened ("updated", "unchanged",
    "stale", "stray", "unmanaged")."""
    uid = str(state.get("uid") or "")
    if not uid:
        return "unmanaged"  # made outside the panel (berth-runtime run): not ours to judge
    return _apply_to(actor, host, _find(uid), state, event, now)


def _apply_to(actor: Actor, host: Host, container: Container | None, state: dict[str, Any],
              event: str, now: datetime) -> str:
    """`_apply_state` with the container of the state's uid already read (None: no such)."""
    uid = str(state.get("uid") or "")
    if container is None:
        if event != "removed":
            _remove_stray(actor, host, uid, str(state.get("name") or ""), "unknown to the panel")
        return "stray"
    if container.host_id != host.pk:
        if event != "removed":
            _remove_stray(actor, host, uid, container.name,
                          f"the container now belongs to "
                          f"{container.host.name if container.host else 'no host'}")
        return "stray"
    reported = _reported_values(state, event)
    if event and all(getattr(container, field) == value for field, value in reported.items()):
        # A repeat: an agent reports a new container's "created" and "started" with one state,
        # and events come again after retries. Nothing to write, push or audit.
        return "unchanged"
    values = reported | {"last_seen": now, "updated_at": now}
    key = values["observed_key"]
    before = _observed(container)
    updated = Container.objects.filter(pk=container.pk, host=host,
                                       observed_key__lte=key).update(**values)
    if not updated:
        return "stale"
    for field, value in values.items():
        setattr(container, field, value)
    emit_container(container)  # to browsers, on commit
    after = _observed(container)
    if after != before:
        action = f"container.{event}" if event else "container.observed"
        record_event(actor, action, container, before=before, after=after)
    return "updated"


def _reported_values(state: dict[str, Any], event: str) -> dict[str, Any]:
    """The Container fields a report of `state` (as `event`) writes, but the timestamps."""
    status = "removed" if event == "removed" else str(state.get("status") or "")
    values: dict[str, Any] = {"status": status, "observed_key": observed_key(state, status),
                              "observed_generation": _int(state.get("generation"))}
    if event == "removed":
        return values | {"pid": 0}
    return values | {
        "runtime_id": str(state.get("runtime_id") or ""), "pid": _int(state.get("pid")),
        "exit_code": _int(state.get("exit_code")), "oom_killed": bool(state.get("oom_killed")),
        "health": str(state.get("health") or ""), "addresses": state.get("addresses") or {},
        "published_ports": state.get("ports") or {},
        "started_at": parse_time(state.get("started_at")),
        "finished_at": parse_time(state.get("finished_at")),
        "restart_count": max(_int(state.get("restart_count")), 0),
        "error": str(state.get("error") or ""),
        "stop_note": str(state.get("stop_note") or "")}


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@transaction.atomic
def record_container_event(actor: Actor, host_name: str, uid: str, event: str,
                           state: dict[str, Any]) -> str:
    """One container event from `host_name`'s agent (runtime/protocol.py EVENTS).

    An out-of-order event is dropped ("stale"), one that repeats what is recorded changes
    nothing ("unchanged"); a report about a container the panel does not place on that host
    makes the panel ask the host to remove it ("stray")."""
    state = dict(state or {})
    state.setdefault("uid", uid)
    uid = str(state.get("uid") or "")
    container = _find(uid) if uid else None
    host: Host
    if container is not None and container.host is not None \
            and container.host.name == host_name:
        host = container.host  # the usual case: one query fewer
    else:
        found = Host.objects.filter(name=host_name).first()
        if found is None:
            log.warning("event from unknown host %r dropped (it has sent no heartbeat)",
                        host_name)
            return "unknown-host"
        host = found
    if not uid:
        return "unmanaged"
    return _apply_to(actor, host, container, state, event, timezone.now())


@transaction.atomic
def record_snapshot(actor: Actor, host_name: str, containers: list[dict[str, Any]],
                    images: list[dict[str, Any]] | None = None,
                    volumes: list[dict[str, Any]] | None = None,
                    networks: list[dict[str, Any]] | None = None) -> dict[str, int]:
    """A host's full state: every container's state as an event, panel containers missing from
    it marked "missing" (reconcile re-applies them), and which images, volumes and networks the
    host holds."""
    host = Host.objects.filter(name=host_name).first()
    if host is None:
        log.warning("snapshot from unknown host %r dropped", host_name)
        return {}
    now = timezone.now()
    counts: dict[str, int] = {}
    seen = set()
    for state in containers or []:
        outcome = _apply_state(actor, host, state, "", now)
        counts[outcome] = counts.get(outcome, 0) + 1
        seen.add(str(state.get("uid") or ""))
    # Only containers the host has acknowledged before can be missing: one whose apply is still
    # on its way has no observed state yet, and reconcile takes care of it.
    missing = Container.objects.filter(host=host).exclude(status__in=("", "missing", "removed"))
    for container in missing.exclude(uid__in=[u for u in seen if _is_uuid(u)]):
        if Container.objects.filter(pk=container.pk, observed_key=container.observed_key).update(
                status="missing", pid=0, updated_at=now):
            record_event(actor, "container.missing", container,
                         before={"status": container.status}, after={"status": "missing"})
            counts["missing"] = counts.get("missing", 0) + 1
    _record_holdings(host, images, volumes, networks)
    return counts


def _record_holdings(host: Host, images: list[dict[str, Any]] | None,
                     volumes: list[dict[str, Any]] | None,
                     networks: list[dict[str, Any]] | None) -> None:
    """Which images, volumes and networks `host` holds (observed state: not audited)."""
    if images is not None:
        references: dict[str, dict[str, Any]] = {}
        for image in images:
            for name in image.get("names") or []:
                references[str(name)] = image
        for reference, image in references.items():
            row, _ = Image.objects.get_or_create(reference=reference)
            if row.image_id != image.get("id") or row.size != _int(image.get("size")):
                Image.objects.filter(pk=row.pk).update(image_id=str(image.get("id") or "")[:80],
                                                       size=_int(image.get("size")))
        _sync_hosts(Image, "reference", host, set(references))
    if volumes is not None:
        names = {str(v.get("name")) for v in volumes if v.get("name")}
        for name in names - set(Volume.objects.filter(name__in=names)
                                .values_list("name", flat=True)):
            Volume.objects.get_or_create(name=name)
        _sync_hosts(Volume, "name", host, names)
    if networks is not None:
        names = {str(n.get("name")) for n in networks if n.get("name")}
        _sync_hosts(Network, "name", host, names)


def _sync_hosts(model: Any, key: str, host: Host, present: set[str]) -> None:
    through = model.hosts.through
    field = model._meta.model_name
    have = set(through.objects.filter(host=host).values_list(f"{field}__{key}", flat=True))
    for row in model.objects.filter(**{f"{key}__in": present - have}):
        row.hosts.add(host)
    gone = have - present
    if gone:
        through.objects.filter(host=host, **{f"{field}__{key}__in": gone}).delete()


@transaction.atomic
def record_operation_progress(actor: Actor, operation_id: str, status: str,
                              progress: float | int | None = None, message: str = "",
                              result: Any = None) -> Operation | None:
    """Progress of an operation. `progress` is a percentage (0..100, the protocol); a finished
    operation never changes again and progress never goes down."""
    if status not in dict(Operation.STATUSES):
        log.warning("operation %s: unknown status %r dropped", operation_id, status)
        return None
    operation = Operation.objects.select_for_update().filter(pk=operation_id).first() \
        if _is_uuid(str(operation_id)) else None
    if operation is None or operation.status in Operation.FINISHED:
        return operation
    if status == Operation.PENDING and operation.status == Operation.RUNNING:
        return operation
    ratio = float(progress or 0) / 100
    if status == Operation.SUCCEEDED:
        ratio = 1.0
    operation.status = status
    operation.progress = max(operation.progress, min(max(ratio, 0.0), 1.0))
    operation.message = str(message or "")[:4000]
    if result is not None:
        operation.result = result
    operation.save()
    emit_operation(operation)  # to browsers, on commit
    if status in Operation.FINISHED:
        record_event(actor, f"operation.{status}", operation, target_name=operation.kind,
                     kind=operation.kind, on=f"{operation.target_type}:"
                     f"{operation.target_name}", message=operation.message)
    return operation
