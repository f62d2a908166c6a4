"""Placement: which host gets a container.

`choose_host` numbers its steps:
1. candidates are the hosts that are up (a fresh heartbeat), minus any excluded (the host a
   container is moving away from);
2. keep those whose labels satisfy every constraint ("label==value", "label!=value");
3. keep those that hold the image, unless the container may pull it;
4. keep those with enough free memory for the container's limit: the inventory's memory minus
   the limits of the containers already placed there;
5. pick the least loaded: fewest containers meant to run there, then the most free memory, then
   the name (so the choice is deterministic).
When nothing is left, `NoHostFits` says why each host was dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from panel.fleet.models import Host

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*$")


class NoHostFits(Exception):
    """No host satisfies the request; the message names each reason."""


@dataclass(frozen=True)
class Constraint:
    label: str
    operator: str  # "==" or "!="
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        equal = str(labels.get(self.label, "")) == self.value and self.label in labels
        return equal if self.operator == "==" else not equal

    def __str__(self) -> str:
        return f"{self.label}{self.operator}{self.value}"


def parse_constraint(text: str) -> Constraint:
    """"label==value" or "label!=value"; ValueError names what is allowed."""
    match = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a constraint: use label==value or label!=value")
    return Constraint(*match.groups())


@dataclass
class PlacementRequest:
    memory: int = 0
    constraints: list[Constraint] = field(default_factory=list)
    image_hosts: set[int] | None = None  # None: the image may be pulled anywhere
    image: str = ""
    exclude: set[int] = field(default_factory=set)


def annotated_hosts(hosts: Iterable[int] | None = None):  # type: ignore[no-untyped-def]
    """Up hosts with `reserved_memory` and `placed_running` computed in the same query."""
    queryset = Host.objects.alive().annotate(
        reserved_memory=Coalesce(Sum("containers__memory"), 0),
        placed_running=Count("containers", filter=Q(containers__desired_state="running")),
    )
    if hosts is not None:
        queryset = queryset.filter(pk__in=list(hosts))
    return queryset


def choose_host(request: PlacementRequest, pinned: Host | None = None) -> Host:
    """The host for a container (see the module docstring); `pinned` restricts to one host."""
    candidates = list(annotated_hosts([pinned.pk] if pinned else None).order_by("name"))
    if pinned is not None and not candidates:
        raise NoHostFits(f"host {pinned.name} is down")
    if not candidates:
        raise NoHostFits("no host is up: start an agent (berth-agent --host-name NAME)")
    reasons: list[str] = []
    fitting = []
    for host in candidates:
        if host.pk in request.exclude:
            continue
        failed = [str(c) for c in request.constraints if not c.matches(host.labels or {})]
        if failed:
            reasons.append(f"{host.name} does not match {', '.join(failed)}")
            continue
        if request.image_hosts is not None and host.pk not in request.image_hosts:
            reasons.append(f"{host.name} does not have image {request.image} "
                           "(set pull: true to pull it)")
            continue
        free = host.memory - host.reserved_memory
        if request.memory and free < request.memory:
            reasons.append(f"{host.name} has {_mib(max(free, 0))} free, "
                           f"{_mib(request.memory)} needed")
            continue
        fitting.append(host)
    if not fitting:
        detail = "; ".join(reasons) or "the only hosts up are excluded"
        raise NoHostFits(f"no host fits: {detail}")
    fitting.sort(key=lambda h: (h.placed_running, -(h.memory - h.reserved_memory), h.name))
    return fitting[0]


def _mib(amount: int) -> str:
    return f"{amount / (1024 * 1024):.0f} MiB"
