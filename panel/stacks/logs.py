"""One merged log of every replica of a stack: each replica's lines asked from its host (the
agents' `logs` RPC), interleaved by time, each line naming its replica and a colour index so
the page colours replicas apart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from panel.fleet.dispatch import AgentError, AgentUnavailable, call_host
from panel.stacks.models import Replica, Stack

MAX_TAIL = 1000


def merged_logs(stack: Stack, tail: int = 100, since: str | None = None,
                service: str | None = None) -> dict[str, Any]:
    """{"lines": [{timestamp, replica, service, colour, stream, text}], "errors": [...]}: the
    last `tail` lines of each replica (or those after `since`), oldest first."""
    replicas = Replica.objects.filter(stack=stack).select_related("container__host") \
        .order_by("service", "slot", "created_at")
    if service:
        replicas = replicas.filter(service=service)
    replicas = [r for r in replicas if r.container.host_id]
    colours = {r.container.name: index % 8 for index, r in enumerate(replicas)}

    def fetch(replica: Replica) -> tuple[Replica, list[dict[str, Any]] | str]:
        container = replica.container
        try:
            return replica, call_host(container.host.name, "logs", str(container.uid),
                                      min(max(tail, 1), MAX_TAIL), since, None, True)
        except (AgentError, AgentUnavailable) as exc:
            return replica, str(exc)

    lines: list[dict[str, Any]] = []
    errors: list[str] = []
    if replicas:
        with ThreadPoolExecutor(max_workers=min(8, len(replicas))) as pool:
            for replica, answer in pool.map(fetch, replicas):
                name = replica.container.name
                if isinstance(answer, str):
                    errors.append(f"{name}: {answer}")
                    continue
                for entry in answer or []:
                    lines.append({"timestamp": entry.get("timestamp", ""), "replica": name,
                                  "service": replica.service, "colour": colours[name],
                                  "stream": entry.get("stream", "stdout"),
                                  "text": entry.get("text", "")})
    # RFC 3339 times of one clock sort as text once their fractions have the same width
    lines.sort(key=lambda line: (_sortable(line["timestamp"]), line["replica"]))
    return {"lines": lines, "errors": errors}


def _sortable(timestamp: str) -> str:
    head, dot, rest = timestamp.partition(".")
    if not dot:
        return timestamp.replace("Z", ".000000000Z")
    digits = "".join(ch for ch in rest if ch.isdigit())
    return f"{head}.{digits.ljust(9, '0')[:9]}"
