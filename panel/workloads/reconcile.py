"""Reconciliation: compare desired with observed state and send what closes the gap.

`reconcile` numbers its steps:
1. containers without a host, and restartable containers (restart policy other than "no",
   desired running) on hosts down for longer than BERTH_RESCHEDULE_AFTER, are placed on another
   fitting host; the move is a conditional update on the old host (so it happens once) and is
   audited. The old host's copy is removed when that host reports it again (reports.py);
2. every container on a host that is up and out of sync gets `apply_container` again — out of
   sync means: its spec generation was not applied or not observed yet, the host does not have
   it (never reported, missing, removed), it should be stopped but runs, or it should run but
   has not started since it was last asked to. A container that started after the request and
   then exited on its own is left to its restart policy (the host's supervisor), as docker does;
3. an apply is re-sent at most every BERTH_REAPPLY_AFTER seconds per container (an agent may be
   pulling a large image), claimed by a conditional update on `applied_at`, so concurrent passes
   send it once;
4. the agent of each host that is up is asked again for the outcome of its operations that have
   been silent for BERTH_CONTROL_REDELIVERY seconds (runtime/agent/outcomes.py: a report can be
   lost with a control worker killed as it took it). An agent answers only for the operations it
   has finished; one still working (a long pull) answers nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from panel.audit.services import Actor, record_event
from panel.fleet.models import DOWN, Host
from panel.fleet.placement import NoHostFits, choose_host
from panel.workloads.models import ACTIVE_STATUSES, RUNNING, STOPPED, Container, Operation
from panel.workloads.services import container_spec, placement_request

ABSENT_STATUSES = ("", "missing", "removed")
OUTCOMES_ASKED = 200


def reconcile(actor: Actor, now: datetime | None = None) -> dict[str, int]:
    """One pass (see the module docstring); returns counts of what it did."""
    now = now or timezone.now()
    counts = {"rescheduled": 0, "unplaceable": 0, "applied": 0}
    for container in _to_place(now):
        with transaction.atomic():
            outcome = _reschedule(actor, container, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    for container in _out_of_sync(now):
        reason = why_out_of_sync(container)
        if reason is None or not _due(container, now):
            continue
        with transaction.atomic():
            if _claim_and_apply(actor, container, reason, now):
                counts["applied"] += 1
    counts["outcomes asked"] = ask_for_silent_outcomes(now)
    return counts


def ask_for_silent_outcomes(now: datetime) -> int:
    """Step 4: `resend_outcomes` to each host that is up, for its unfinished operations silent
    for BERTH_CONTROL_REDELIVERY s (at most OUTCOMES_ASKED per host and pass, oldest first);
    returns how many were asked for."""
    from panel.fleet.dispatch import send_to_host

    silent_since = now - timedelta(seconds=settings.BERTH_CONTROL_REDELIVERY)
    up = Host.objects.exclude(status=DOWN).values_list("name", flat=True)
    silent = Operation.objects.filter(host_name__in=up, updated_at__lt=silent_since).exclude(
        status__in=Operation.FINISHED).order_by("updated_at").values_list("host_name", "pk")
    by_host: dict[str, list[str]] = {}
    for host_name, pk in silent:
        by_host.setdefault(host_name, []).append(str(pk))
    asked = 0
    for host_name, ids in by_host.items():
        send_to_host(host_name, "resend_outcomes", ids[:OUTCOMES_ASKED])
        asked += len(ids[:OUTCOMES_ASKED])
    return asked


def _to_place(now: datetime) -> list[Container]:
    cutoff = now - timedelta(seconds=settings.BERTH_RESCHEDULE_AFTER)
    stranded = Q(host__status=DOWN, host__down_since__lte=cutoff, desired_state=RUNNING) & \
        ~Q(restart="no")
    return list(Container.objects.select_related("host").filter(
        stranded | Q(host__isnull=True)))


def _reschedule(actor: Actor, container: Container, now: datetime) -> str:
    old_host = container.host
    exclude = {old_host.pk} if old_host else set()
    try:
        new_host = choose_host(placement_request(container, exclude))
    except NoHostFits as exc:
        message = f"cannot be rescheduled: {exc}"
        if container.error != message:
            Container.objects.filter(pk=container.pk).update(error=message, updated_at=now)
        return "unplaceable"
    moved = Container.objects.filter(pk=container.pk, host=old_host).update(
        host=new_host, status="", pid=0, observed_key="", observed_generation=0,
        applied_generation=0, applied_at=None, error="", updated_at=now)
    if moved != 1:
        return "raced"
    record_event(actor, "container.reschedule", container,
                 before={"host": old_host.name if old_host else None},
                 after={"host": new_host.name},
                 reason=f"host {old_host.name} down since {old_host.down_since:%Y-%m-%d %H:%M:%S}"
                 if old_host and old_host.down_since else "no host assigned")
    return "rescheduled"


def _out_of_sync(now: datetime) -> list[Container]:
    """Candidates, narrowed in SQL; `why_out_of_sync` decides."""
    alive = Host.objects.alive(now).values("pk")
    gap = (Q(applied_generation__lt=F("generation")) | Q(observed_generation__lt=F("generation"))
           | Q(status__in=ABSENT_STATUSES)
           | (Q(desired_state=STOPPED) & Q(status__in=ACTIVE_STATUSES))
           | (Q(desired_state=RUNNING) & ~Q(status__in=ACTIVE_STATUSES)))
    return list(Container.objects.select_related("host").filter(gap, host__in=alive))


def why_out_of_sync(container: Container) -> str | None:
    """Why `container` needs an apply, or None when it is as desired (or its policy's)."""
    if container.observed_generation < container.generation:
        return f"generation {container.generation} not observed yet"
    if container.status in ABSENT_STATUSES:
        return f"not on host {container.host.name if container.host else '?'}"
    active = container.status in ACTIVE_STATUSES
    if container.desired_state == STOPPED and active:
        return "runs but should be stopped"
    if container.desired_state == RUNNING and not active:
        asked = container.desired_changed_at
        if container.started_at is None or (asked is not None and container.started_at < asked):
            return "has not started since it was asked to"
    return None


def _due(container: Container, now: datetime) -> bool:
    if container.applied_generation < container.generation or container.applied_at is None:
        return True
    return container.applied_at <= now - timedelta(seconds=settings.BERTH_REAPPLY_AFTER)


def _claim_and_apply(actor: Actor, container: Container, reason: str, now: datetime) -> bool:
    claimed = Container.objects.filter(pk=container.pk, host=container.host_id,
                                       applied_at=container.applied_at).update(
        applied_at=now, applied_generation=container.generation)
    if claimed != 1 or container.host is None:
        return False
    record_event(actor, "container.reconcile", container, reason=reason,
                 host=container.host.name)
    from panel.fleet.dispatch import send_on_commit

    send_on_commit(container.host.name, "apply_container", container_spec(container), None)
    return True


def summary(counts: dict[str, Any]) -> str:
    """One log line for a pass."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v) or "in sync"
