"""One merged log of every replica of a stack, each line naming its replica and a colour index so
the page colours replicas apart.

- `merged_logs`: the REST answer (`GET /api/v1/stacks/ID/logs`), each replica's lines asked from
  its host (the agents' `logs` RPC) and interleaved by time.
- The live view (panel/live/stack_logs.py) reads the Redis streams the agents ship the same lines
  into; it shares `stack_replicas`, `ReplicaColours` and `interleave` from here."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from panel.fleet.dispatch import AgentError, AgentUnavailable, call_host
from panel.stacks.models import Replica, Stack

MAX_TAIL = 1000
PALETTE = 8  # colours the page has for replicas (static/js/stacks.js)


def stack_replicas(stack: Stack | int, service: str | None = None) -> QuerySet:
    """The stack's replicas in (service, slot) order, with their containers."""
    replicas = Replica.objects.filter(stack=stack).select_related("container__host") \
        .order_by("service", "slot", "created_at", "pk")
    return replicas.filter(service=service) if service else replicas


class ReplicaColours:
    """A colour index per replica that stays the same while the replica is shown: the first
    ones get 0, 1, 2… in the order given; one that appears later gets the colour the fewest
    current replicas have (the lowest such index), so a scale-up does not recolour the others."""

    def __init__(self) -> None:
        self.assigned: dict[Hashable, int] = {}

    def assign(self, current: Iterable[Hashable]) -> dict[Hashable, int]:
        """{replica key: colour} for the replicas shown now, keys seen before keeping theirs."""
        keys = list(current)
        used = Counter(self.assigned[key] for key in keys if key in self.assigned)
        for key in keys:
            if key not in self.assigned:
                colour = min(range(PALETTE), key=lambda index: (used[index], index))
                self.assigned[key] = colour
                used[colour] += 1
        return {key: self.assigned[key] for key in keys}


def sort_key(timestamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp with any fraction width and any
    offset (conmon writes `…+00:00`, the streams' lines say `…Z`); 0 when it is not one."""
    head, dot, rest = timestamp.partition(".")
    digits = ""
    if dot:
        width = len(rest) - len(rest.lstrip("0123456789"))
        digits, zone = rest[:width], rest[width:]
    else:
        head, zone = head[:19], head[19:]
    try:
        moment = datetime.fromisoformat(head + (zone or "+00:00"))
    except ValueError:
        return 0
    return int(moment.timestamp()) * 1_000_000_000 + int(digits.ljust(9, "0")[:9] or 0)


def interleave(replica_lines: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Lists of lines, one per replica in its own order, merged into one by `timestamp`
    (replica name breaking ties). A merge, not a sort: each replica's lines keep their order
    even where its timestamps do not rise (an entry carries the time of its first part)."""
    return list(heapq.merge(*replica_lines,
                            key=lambda line: (sort_key(line["timestamp"]), line["replica"])))


def merged_logs(stack: Stack, tail: int = 100, since: str | None = None,
                service: str | None = None) -> dict[str, Any]:
    """{"lines": [{timestamp, replica, service, colour, stream, text}], "errors": [...]}: the
    last `tail` lines of each replica (or those after `since`), oldest first."""
    replicas = [r for r in stack_replicas(stack, service) if r.container.host_id]
    colours = ReplicaColours().assign(r.container.name for r in replicas)

    def fetch(replica: Replica) -> tuple[Replica, list[dict[str, Any]] | str]:
        container = replica.container
        if container.host is None:
            return replica, f"{container.name} is on no host"
        try:
            return replica, call_host(container.host.name, "logs", str(container.uid),
                                      min(max(tail, 1), MAX_TAIL), since, None, True)
        except (AgentError, AgentUnavailable) as exc:
            return replica, str(exc)

    replica_lines: list[list[dict[str, Any]]] = []
    errors: list[str] = []
    if replicas:
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            for replica, answer in pool.map(fetch, replicas):
                name = replica.container.name
                if isinstance(answer, str):
                    errors.append(f"{name}: {answer}")
                    continue
                replica_lines.append([
                    {"timestamp": entry.get("timestamp", ""), "replica": name,
                     "service": replica.service, "colour": colours[name],
                     "stream": entry.get("stream", "stdout"), "text": entry.get("text", "")}
                    for entry in answer or []])
    return {"lines": interleave(replica_lines), "errors": errors}
