"""`/ws/stacks/<id>/logs/?tail=N&service=S&after=C:SEQ,…`: the merged live log of every replica
of a stack, read from the Redis streams the agents ship each container's log into.

Authorised like the REST endpoint (`stack.logs`, panel.access.policy) on connect, with the close
codes of panel/live/consumers.py. Messages:

- `{"replicas": [{container, replica, service, colour}]}` first, and again whenever the set of
  replicas changes (scale, rolling update, removal);
- `{"lines": [{container, seq, timestamp, replica, service, colour, stream, text}]}`: first the
  last `tail` lines of each replica (default 200, at most 1000) merged by time, then new lines as
  they arrive, interleaved by time within each message. `seq` counts per replica (`container`
  is its container id); `colour` stays the same for a replica while the socket is open;
- `{"gap": {"container", "replica", "after", "resumed_at"}}` when a resumed replica's lines after
  `after` were already trimmed from its capped stream.

`after=C:SEQ,…` (container id : last seq seen) resumes those replicas just after SEQ, so a page
that reconnects misses no line and gets none twice; replicas it does not name get their tail.

The stack's replicas are read again every REFRESH_SECONDS (the blocking XREAD over all their
streams waits at most until then): a replica that appeared joins with its lines from its start
(at most JOIN_TAIL), one that went away drops out of `replicas` at once and stops being read
LEAVE_AFTER seconds later (its last lines are written after the panel forgot it), and the socket
closes with 4404/4403 once the stack is removed or the user may no longer read its logs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404

from panel.access import policy
from panel.live import streams
from panel.live.consumers import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    BaseConsumer,
    int_param,
    ws_actor,
)
from panel.stacks.compose.resolve import SERVICE_NAME
from panel.stacks.logs import MAX_TAIL, ReplicaColours, interleave, stack_replicas
from panel.stacks.models import Stack

DEFAULT_TAIL = 200
JOIN_TAIL = 1000
REFRESH_SECONDS = 2.0
LEAVE_AFTER = 10.0  # seconds a replica gone from the stack is still read
READ_COUNT = 1000  # lines per replica per XREAD
MAX_RESUMED = 1000  # C:SEQ pairs in `after`
REASONS = {NOT_FOUND: "no such stack", FORBIDDEN: "your role may not read this stack's logs"}


@dataclass(frozen=True)
class ReplicaLog:
    container_id: int
    uid: str
    name: str
    service: str


@database_sync_to_async
def _authorized_stack(scope: dict[str, Any], stack_id: int) -> int | None:
    """None when the user may read the stack's logs, else the close code (the refusal is
    audited, as the REST endpoint's is)."""
    stack = Stack.objects.select_related("project").filter(pk=stack_id).first()
    if stack is None:
        return NOT_FOUND
    try:
        policy.authorize(scope["user"], "stack.logs", stack, ws_actor(scope))
    except Http404:
        return NOT_FOUND
    except PermissionDenied:
        return FORBIDDEN
    return None


@database_sync_to_async
def _current_replicas(user: Any, stack_id: int, service: str | None) -> list[ReplicaLog] | int:
    """The stack's replicas now, or the close code once the stack is gone or the user's role
    no longer allows reading its logs (memberships are read afresh each time)."""
    stack = Stack.objects.select_related("project").filter(pk=stack_id).first()
    if stack is None:
        return NOT_FOUND
    policy.forget(user)
    if not policy.can(user, "stack.logs", stack):
        return FORBIDDEN if policy.can(user, "stack.view", stack) else NOT_FOUND
    return [ReplicaLog(r.container_id, str(r.container.uid), r.container.name, r.service)
            for r in stack_replicas(stack, service)]


def _resume_points(text: str) -> dict[int, int]:
    """`C:SEQ,C:SEQ` as {container id: seq}."""
    points: dict[int, int] = {}
    for pair in filter(None, text.split(",")):
        container, _, seq = pair.partition(":")
        if not (container.isdigit() and seq.isdigit()):
            raise ValueError(pair)
        points[int(container)] = int(seq)
    if len(points) > MAX_RESUMED:
        raise ValueError("too many")
    return points


class StackLogsConsumer(BaseConsumer):
    """See the module docstring."""

    reader: streams.MultiLogReader
    following: dict[str, ReplicaLog]  # uid -> replica, the leaving ones included
    leaving: dict[str, float]  # uid -> loop time it stops being read
    colours: ReplicaColours

    async def start(self) -> None:
        params = self.params()
        try:
            tail = int_param(params, "tail", DEFAULT_TAIL, MAX_TAIL)
        except ValueError:
            await self.refuse(BAD_REQUEST, f"tail is a whole number of lines per replica, "
                                           f"0..{MAX_TAIL}")
            return
        try:
            resume = _resume_points(params.get("after", ""))
        except ValueError:
            await self.refuse(BAD_REQUEST, "after is CONTAINER:SEQ pairs (whole numbers) "
                                           f"separated by commas, at most {MAX_RESUMED}")
            return
        service = params.get("service") or None
        if service is not None and (len(service) > 64 or not SERVICE_NAME.fullmatch(service)):
            await self.refuse(BAD_REQUEST, "service is a service name: at most 64 letters, "
                                           "digits, '.', '_' or '-'")
            return
        stack_id = int(self.scope["url_route"]["kwargs"]["stack_id"])
        refused = await _authorized_stack(self.scope, stack_id)
        if refused is not None:
            await self.refuse(refused, REASONS[refused])
            return
        await self.accept()
        self.run(self.stream(stack_id, service, tail or 0, resume))

    async def stream(self, stack_id: int, service: str | None, tail: int,
                     resume: dict[int, int]) -> None:
        self.reader = streams.MultiLogReader()
        self.following, self.leaving, self.colours = {}, {}, ReplicaColours()
        loop = asyncio.get_running_loop()
        first = True
        while True:
            current = await _current_replicas(self.scope["user"], stack_id, service)
            if isinstance(current, int):
                await self.end(current, "the stack was removed" if current == NOT_FOUND
                               else REASONS[current])
                return
            await self.refresh(current, tail if first else JOIN_TAIL,
                               resume if first else {}, announce=first)
            first = False
            deadline = loop.time() + REFRESH_SECONDS
            while (left := deadline - loop.time()) > 0:
                found = await self.reader.read(int(left * 1000), READ_COUNT)
                await self.push([[self.line(self.following[uid], entry) for entry in entries]
                                 for uid, entries in found.items()])

    async def refresh(self, current: list[ReplicaLog], tail: int, resume: dict[int, int],
                      announce: bool) -> None:
        """Follow `current`: new replicas join (resumed, or with their last `tail` lines). One
        gone from the stack is still read for LEAVE_AFTER seconds, since the panel forgets a
        replica before its host stops it and its last words come after; then it leaves."""
        now = asyncio.get_running_loop().time()
        wanted = {replica.uid: replica for replica in current}
        newly_gone = [uid for uid in self.following
                      if uid not in wanted and uid not in self.leaving]
        for uid in newly_gone:
            self.leaving[uid] = now + LEAVE_AFTER
        for uid in [uid for uid in self.leaving if uid in wanted]:  # listed again
            del self.leaving[uid]
        joining = [replica for replica in current if replica.uid not in self.following]
        self.colours.assign([*wanted, *self.leaving])
        groups: list[list[dict[str, Any]]] = []
        for uid in [uid for uid, until in self.leaving.items() if until <= now]:
            groups.append([self.line(self.following[uid], entry)
                           for entry in await self.reader.leave(uid)])
            del self.following[uid], self.leaving[uid]
        for replica in joining:
            self.following[replica.uid] = replica
        if newly_gone or joining or announce:
            await self.send_json({"replicas": [
                {"container": r.container_id, "replica": r.name, "service": r.service,
                 "colour": self.colours.assigned[r.uid]} for r in current]})
        resumed = [r for r in joining if r.container_id in resume]
        tailed = [r for r in joining if r.container_id not in resume]
        trimmed = await asyncio.gather(*(self.reader.join_after(r.uid, resume[r.container_id])
                                         for r in resumed))
        for replica, first_held in zip(resumed, trimmed, strict=True):
            if first_held is not None:
                await self.send_json({"gap": {
                    "container": replica.container_id, "replica": replica.name,
                    "after": resume[replica.container_id], "resumed_at": first_held}})
        tails = await asyncio.gather(*(self.reader.join_tail(r.uid, tail) for r in tailed))
        groups += [[self.line(replica, entry) for entry in entries]
                   for replica, entries in zip(tailed, tails, strict=True)]
        await self.push(groups)

    def line(self, replica: ReplicaLog, entry: dict[str, Any]) -> dict[str, Any]:
        return {"container": replica.container_id, "seq": entry["seq"],
                "timestamp": entry["ts"], "replica": replica.name, "service": replica.service,
                "colour": self.colours.assigned[replica.uid], "stream": entry["stream"],
                "text": entry["text"]}

    async def push(self, replica_lines: list[list[dict[str, Any]]]) -> None:
        """Send each replica's lines (in seq order) interleaved by time."""
        lines = interleave(replica_lines)
        for start in range(0, len(lines), streams.BATCH):
            await self.send_json({"lines": lines[start:start + streams.BATCH]})
