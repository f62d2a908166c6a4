"""Readers of the Redis streams the agents write (runtime/agent/logship.py): logs by seq (of one
container, or of several at once for a stack's merged log), stats.

The stream id of a log entry is ``<seq>-0``, so "after seq N" is the exclusive range ``(N-0``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from runtime.agent.logship import log_stream_key, stats_stream_key, stats_watch_key
from runtime.containers.logs import docker_timestamp

BATCH = 5000  # lines per WebSocket message at most
BLOCK_MS = 5000

_clients: dict[int, aioredis.Redis] = {}


def client() -> aioredis.Redis:
    """One connection pool per event loop (uvicorn has one; tests make several)."""
    loop_id = id(asyncio.get_running_loop())
    found = _clients.get(loop_id)
    if found is None:
        found = _clients[loop_id] = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=60, health_check_interval=30)
    return found


def _seq(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def log_line(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    return {"seq": _seq(entry_id),
            "ts": docker_timestamp(fields.get(b"ts", b"").decode()),
            "stream": fields.get(b"stream", b"stdout").decode(),
            "text": fields.get(b"text", b"").decode("utf-8", errors="replace")}


class LogReader:
    """The log lines of one container: a tail or the lines after a seq, then follow."""

    def __init__(self, uid: str, redis: aioredis.Redis | None = None):
        self.key = log_stream_key(uid)
        # redis-py types replies as bytes | str either way; ours are bytes (no decoding)
        self.redis: Any = redis or client()
        self.last = 0

    async def first_seq(self) -> int | None:
        entries = await self.redis.xrange(self.key, "-", "+", count=1)
        return _seq(entries[0][0]) if entries else None

    async def tail(self, count: int) -> list[dict[str, Any]]:
        """The last `count` lines, oldest first; follow() continues after them."""
        entries = await self.redis.xrevrange(self.key, "+", "-", count=count) if count else []
        lines = [log_line(i, f) for i, f in reversed(entries)]
        if lines:
            self.last = lines[-1]["seq"]
        else:
            info = await self.redis.xrevrange(self.key, "+", "-", count=1)
            self.last = _seq(info[0][0]) if info else 0
        return lines

    async def after(self, seq: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of every line after `seq` that the stream still holds."""
        self.last = seq
        while True:
            entries = await self.redis.xrange(self.key, f"({seq}-0", "+", count=BATCH)
            if not entries:
                return
            batch = [log_line(i, f) for i, f in entries]
            seq = self.last = batch[-1]["seq"]
            yield batch
            if len(entries) < BATCH:
                return

    async def follow(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of new lines as they arrive, forever."""
        while True:
            answer = await self.redis.xread({self.key: f"{self.last}-0"}, count=BATCH,
                                            block=BLOCK_MS)
            if not answer:
                continue
            batch = [log_line(i, f) for i, f in answer[0][1]]
            self.last = batch[-1]["seq"]
            yield batch


class MultiLogReader:
    """The log lines of several containers followed together: each joins with its tail or after
    a seq, then one blocking XREAD covers every stream, so a quiet replica costs nothing."""

    def __init__(self, redis: aioredis.Redis | None = None):
        self.redis: Any = redis or client()  # see LogReader
        self.last: dict[str, int] = {}  # uid -> seq of the last line handed out

    async def join_tail(self, uid: str, count: int) -> list[dict[str, Any]]:
        """Follow `uid`: its last `count` lines now, the rest as read() finds them."""
        reader = LogReader(uid, self.redis)
        lines = await reader.tail(count)
        self.last[uid] = reader.last
        return lines

    async def join_after(self, uid: str, seq: int) -> int | None:
        """Follow `uid` from just after `seq` (read() hands out what came since). The first seq
        still held when lines after `seq` were already trimmed from the capped stream, else
        None."""
        self.last[uid] = seq
        first = await LogReader(uid, self.redis).first_seq()
        return first if first is not None and first > seq + 1 else None

    async def leave(self, uid: str) -> list[dict[str, Any]]:
        """Stop following `uid`; the lines it wrote since the last read (at most BATCH)."""
        seq = self.last.pop(uid, None)
        if seq is None:
            return []
        entries: Any = await self.redis.xrange(log_stream_key(uid), f"({seq}-0", "+",
                                               count=BATCH)
        return [log_line(i, f) for i, f in entries]

    async def read(self, block_ms: int, count: int = 1000) -> dict[str, list[dict[str, Any]]]:
        """{uid: new lines (at most `count` each)}, waiting up to `block_ms` for the first."""
        block_ms = max(1, block_ms)  # 0 would block for ever
        if not self.last:
            await asyncio.sleep(block_ms / 1000)
            return {}
        uids = {log_stream_key(uid): uid for uid in self.last}
        answer: Any = await self.redis.xread(
            {key: f"{self.last[uid]}-0" for key, uid in uids.items()}, count=count,
            block=block_ms)
        found: dict[str, list[dict[str, Any]]] = {}
        for key, entries in answer or []:
            uid = uids[key.decode() if isinstance(key, bytes) else key]
            lines = found[uid] = [log_line(i, f) for i, f in entries]
            self.last[uid] = lines[-1]["seq"]
        return found


async def watch_stats(uid: str, seconds: int = 5) -> None:
    """Ask the container's agent to sample stats for the next `seconds`."""
    await client().set(stats_watch_key(uid), "1", ex=seconds)


async def stats_history(uid: str, count: int = 300) -> tuple[list[dict[str, Any]], str]:
    """The last `count` samples, oldest first, and the id to follow from."""
    entries: Any = await client().xrevrange(stats_stream_key(uid), "+", "-", count=count)
    samples = [json.loads(f[b"json"]) for _, f in reversed(entries)]
    return samples, (entries[0][0].decode() if entries else "0-0")


async def next_stats(uid: str, last_id: str,
                     block_ms: int = 2000) -> tuple[list[dict[str, Any]], str]:
    answer: Any = await client().xread({stats_stream_key(uid): last_id}, count=100,
                                       block=block_ms)
    if not answer:
        return [], last_id
    entries = answer[0][1]
    return [json.loads(f[b"json"]) for _, f in entries], entries[-1][0].decode()
