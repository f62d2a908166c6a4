"""Deployments in plain language, for people who do not read compose files:

    "Ana deployed shop revision 7 (web 1.4 → 1.5) at 14:02 on 4 Dec; it was rolled back
     automatically at 14:05 because replica web-2 failed its health check"

`changes(old_spec, new_spec)` says what a revision changed per service in words (also above the
raw diff of the stack page); `sentence(revision, previous)` tells one revision's story;
`health(stacks)` sums up each application (healthy / degraded / down, since when) in a constant
number of queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from panel.stacks.models import Replica, Revision, Stack

AUTOMATIC = "automatic rollback"


def _tag(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else image


def _services(spec: dict[str, Any] | None) -> dict[str, Any]:
    return (spec or {}).get("services", {}) or {}


def version_of(service: dict[str, Any]) -> str:
    """A service's version as people say it: the image tag (or the whole reference)."""
    return _tag(str((service.get("container") or {}).get("image") or ""))


def _keys(value: Any) -> set[str]:
    return set(value) if isinstance(value, dict) else set()


def changes(old_spec: dict[str, Any] | None, new_spec: dict[str, Any]) -> list[str]:
    """What changed from `old_spec` to `new_spec`, one phrase per change ("web 1.4 → 1.5",
    "worker added", "web scaled 2 → 3", "web environment: LOG_LEVEL changed"). Environment
    values are never shown, only their names."""
    old, new = _services(old_spec), _services(new_spec)
    phrases: list[str] = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            phrases.append(f"{name} {version_of(new[name])} added".replace("  ", " "))
            continue
        if name not in new:
            phrases.append(f"{name} removed")
            continue
        before, after = old[name], new[name]
        if version_of(before) != version_of(after):
            phrases.append(f"{name} {version_of(before)} → {version_of(after)}")
        if before.get("replicas") != after.get("replicas"):
            phrases.append(f"{name} scaled {before.get('replicas')} → {after.get('replicas')}")
        env_before = (before.get("container") or {}).get("env") or {}
        env_after = (after.get("container") or {}).get("env") or {}
        changed = sorted(k for k in _keys(env_before) | _keys(env_after)
                         if env_before.get(k) != env_after.get(k))
        if changed:
            phrases.append(f"{name} environment: {', '.join(changed[:5])}"
                           f"{' and more' if len(changed) > 5 else ''} changed")
        rest = {k for k in set(before.get("container") or {}) | set(after.get("container") or {})
                if k not in ("image", "env")
                and (before.get("container") or {}).get(k) != (after.get("container") or {}).get(k)}
        rest |= {k for k in set(before) | set(after)
                 if k not in ("container", "replicas") and before.get(k) != after.get(k)}
        if rest:
            phrases.append(f"{name} settings changed: {', '.join(sorted(rest)[:6])}")
    return phrases


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{local:%H:%M} on {local.day} {local:%b}"


def _who(name: str) -> str:
    return (name[:1].upper() + name[1:]) if name else "Someone"


def is_automatic(revision: Revision) -> bool:
    return (revision.reason or "").startswith(AUTOMATIC)


def first_reason(revision: Revision) -> str:
    """The cause of a failure without the bookkeeping the engine appends."""
    reason = revision.reason or ""
    if is_automatic(revision):
        reason = reason.split(": ", 1)[-1]
    return reason.split("; rolled back to revision")[0].strip()


def sentence(revision: Revision, previous: Revision | None) -> str:
    """One revision's story (see the module docstring)."""
    stack = revision.stack.name
    what = changes(previous.spec if previous else None, revision.spec) if previous else []
    detail = f" ({'; '.join(what)})" if what else ""
    if revision.rollback_of and is_automatic(revision):
        text = (f"Berth rolled {stack} back automatically to revision {revision.rollback_of} "
                f"at {_when(revision.created_at)}{detail}")
    elif revision.rollback_of:
        text = (f"{_who(revision.actor_name)} rolled {stack} back to revision "
                f"{revision.rollback_of} at {_when(revision.created_at)}{detail}")
    else:
        text = (f"{_who(revision.actor_name)} deployed {stack} revision {revision.number}"
                f"{detail} at {_when(revision.created_at)}")
    done = _when(revision.finished_at)
    reason = first_reason(revision)
    outcome = {
        Revision.SUCCEEDED: f"; it was live at {done}",
        Revision.ROLLED_BACK: f"; it was rolled back automatically at {done}"
                              + (f" because {reason}" if reason else ""),
        Revision.FAILED: f"; it failed at {done}" + (f": {reason}" if reason else ""),
        Revision.PAUSED: f"; it stopped half-way at {done}" + (f": {reason}" if reason else ""),
        Revision.CANCELLED: f"; it was cancelled at {done}" + (f": {reason}" if reason else ""),
    }.get(revision.status, "; it is being deployed")
    return text + outcome


def previous_revisions(revisions: Iterable[Revision]) -> dict[tuple[int, int], Revision]:
    """The revision before each of `revisions` (by number, same stack), in one query."""
    wanted = {(r.stack_id, r.number - 1) for r in revisions if r.number > 1}
    if not wanted:
        return {}
    from django.db.models import Q

    condition = Q()
    for stack_id, number in wanted:
        condition |= Q(stack_id=stack_id, number=number)
    return {(r.stack_id, r.number): r
            for r in Revision.objects.filter(condition).only("stack_id", "number", "spec")}


@dataclass
class Health:
    state: str  # "healthy" | "degraded" | "down" | "not deployed"
    since: datetime | None
    ready: int
    desired: int
    version: str  # "web 1.5, db 16"
    changed_by: str
    changed_at: datetime | None


def health(stacks: list[Stack]) -> dict[int, Health]:
    """Each stack's health summary: every declared replica running (and healthy where it has a
    check) is healthy, some is degraded, none is down. `since` is the latest change of a
    replica's state (or the deploy that made it current)."""
    ready: dict[int, int] = {}
    latest: dict[int, datetime] = {}
    rows = Replica.objects.filter(stack__in=stacks).values_list(
        "stack_id", "container__status", "container__health", "container__updated_at")
    for stack_id, status, health_state, updated in rows:
        if status == "running" and health_state in ("", "healthy"):
            ready[stack_id] = ready.get(stack_id, 0) + 1
        if updated and (stack_id not in latest or updated > latest[stack_id]):
            latest[stack_id] = updated
    out = {}
    for stack in stacks:
        current = stack.current_revision
        services = _services(current.spec if current else None)
        desired = sum(int(s.get("replicas") or 0) for s in services.values())
        count = min(ready.get(stack.pk, 0), desired)
        if current is None:
            state = "not deployed"
        elif desired == 0 or count == desired:
            state = "healthy"
        else:
            state = "down" if count == 0 else "degraded"
        since = latest.get(stack.pk) or (current.finished_at if current else None)
        if current is not None and current.finished_at and since \
                and current.finished_at > since:
            since = current.finished_at
        out[stack.pk] = Health(
            state, since, count, desired,
            ", ".join(f"{n} {version_of(s)}" for n, s in sorted(services.items())),
            current.actor_name if current else stack.created_by,
            current.finished_at if current else stack.created_at)
    return out
