"""WebSocket consumers: container logs, container stats, and the events of everything a user may
see (a stack's merged log is panel/live/stack_logs.py). Each authenticates on connect and
authorises through panel.access.policy, the same checks as the views and the REST API. Close
codes: 4401 not signed in, 4403 not allowed (e.g. a viewer asking for logs), 4404 no such object
(or one outside the user's teams), 4400 bad parameters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404

from panel.access import policy
from panel.audit.services import Actor
from panel.live import streams
from panel.live.emit import HOSTS_GROUP, PLATFORM_GROUP, actor_group, project_group

log = logging.getLogger(__name__)

NOT_SIGNED_IN, FORBIDDEN, NOT_FOUND, BAD_REQUEST = 4401, 4403, 4404, 4400
MAX_TAIL = 100_000


def ws_actor(scope: dict[str, Any]) -> Actor:
    user = scope["user"]
    client = scope.get("client") or (None, None)
    return Actor(name=user.get_username(), channel="ws", user_id=user.pk,
                 source_address=client[0])


@database_sync_to_async
def _authorized_container(scope: dict[str, Any], action: str, container_id: int) -> Any:
    """The container, or the close code that refuses the socket."""
    from panel.workloads.models import Container

    user = scope["user"]
    container = Container.objects.select_related("host", "project").filter(
        pk=container_id).first()
    if container is None:
        return NOT_FOUND
    try:
        policy.authorize(user, action, container, ws_actor(scope))
    except Http404:
        return NOT_FOUND
    except PermissionDenied:
        return FORBIDDEN
    return container


class BaseConsumer(AsyncJsonWebsocketConsumer):
    """Common connect/close handling; subclasses implement `start()`."""

    task: asyncio.Task | None = None

    def params(self) -> dict[str, str]:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        return {k: v[-1] for k, v in query.items()}

    async def refuse(self, code: int, reason: str) -> None:
        # Accept first, so the browser sees the close code (a refused handshake has none).
        await self.accept()
        await self.end(code, reason)

    async def end(self, code: int, reason: str) -> None:
        """Close an accepted socket saying why, in a message and as the close reason."""
        await self.send_json({"error": reason, "code": code})
        await self.close(code=code, reason=reason.encode()[:123].decode(errors="ignore"))

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(NOT_SIGNED_IN, "sign in first")
            return
        await self.start()

    async def start(self) -> None:
        raise NotImplementedError

    def run(self, coroutine: Any) -> None:
        self.task = asyncio.ensure_future(self._guarded(coroutine))

    async def _guarded(self, coroutine: Any) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis gone: tell the page, which reconnects with after=SEQ
            log.warning("%s stream ended: %s", type(self).__name__, exc)
            with contextlib.suppress(Exception):
                await self.close(code=1011)

    async def disconnect(self, code: int) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def int_param(params: dict[str, str], name: str, default: int | None, high: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    value = int(raw)  # ValueError → 4400
    if not 0 <= value <= high:
        raise ValueError(name)
    return value


class LogsConsumer(BaseConsumer):
    """`/ws/containers/<id>/logs/?tail=N&timestamps=1&after=SEQ`

    Sends `{"lines": [{"seq", "ts", "stream", "text"}]}` batches: the last N lines (or every line
    after SEQ still held), then new lines as they arrive. When lines after SEQ were already
    trimmed from the capped stream it first sends `{"gap": {"after": SEQ, "resumed_at": n}}`
    (the full log can be downloaded)."""

    async def start(self) -> None:
        params = self.params()
        try:
            tail = int_param(params, "tail", 500, MAX_TAIL)
            after = int_param(params, "after", None, 2**62)
        except ValueError:
            await self.refuse(BAD_REQUEST, f"tail is 0..{MAX_TAIL} and after a seq number")
            return
        found = await _authorized_container(self.scope, "container.logs",
                                            int(self.scope["url_route"]["kwargs"]["container_id"]))
        if isinstance(found, int):
            await self.refuse(found, "no such container" if found == NOT_FOUND else
                              "your role may not read this container's logs")
            return
        await self.accept()
        self.run(self.stream(str(found.uid), tail or 0, after))

    async def stream(self, uid: str, tail: int, after: int | None) -> None:
        reader = streams.LogReader(uid)
        if after is not None:
            first = await reader.first_seq()
            if first is not None and first > after + 1:
                await self.send_json({"gap": {"after": after, "resumed_at": first}})
            async for batch in reader.after(after):
                await self.send_json({"lines": batch})
        else:
            lines = await reader.tail(tail)
            for start in range(0, len(lines), streams.BATCH):
                await self.send_json({"lines": lines[start:start + streams.BATCH]})
        await self.send_json({"caught_up": reader.last})
        async for batch in reader.follow():
            await self.send_json({"lines": batch})


class StatsConsumer(BaseConsumer):
    """`/ws/containers/<id>/stats/`: `{"samples": [...]}`, the recent history first, then one
    sample about every second while the socket is open. The agent samples a container only
    while someone watches it, once for all viewers (runtime/agent/logship.py)."""

    async def start(self) -> None:
        found = await _authorized_container(self.scope, "container.stats",
                                            int(self.scope["url_route"]["kwargs"]["container_id"]))
        if isinstance(found, int):
            await self.refuse(found, "no such container" if found == NOT_FOUND else
                              "your role may not read this container's stats")
            return
        await self.accept()
        self.run(self.stream(str(found.uid)))

    async def stream(self, uid: str) -> None:
        await streams.watch_stats(uid)
        samples, last_id = await streams.stats_history(uid)
        await self.send_json({"samples": samples})
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            if loop.time() - renewed > 2:
                await streams.watch_stats(uid)
                renewed = loop.time()
            samples, last_id = await streams.next_stats(uid, last_id)
            if samples:
                await self.send_json({"samples": samples})


@database_sync_to_async
def _event_groups(user: Any) -> list[str]:
    groups = [HOSTS_GROUP, actor_group(user.get_username())]
    if policy.is_platform_admin(user):
        return [*groups, PLATFORM_GROUP]
    projects = policy.projects_for(user, "container.view").values_list("pk", flat=True)
    return groups + [project_group(pk) for pk in projects]


class EventsConsumer(BaseConsumer):
    """`/ws/events/`: `{"events": [{"type": "container"|"operation"|"host", …}]}` for every
    object the user may see (groups chosen by panel.live.emit)."""

    groups_joined: list[str]

    async def start(self) -> None:
        self.groups_joined = await _event_groups(self.scope["user"])
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"hello": {"groups": len(self.groups_joined)}})

    async def live_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"events": [message["event"]]})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        await super().disconnect(code)
