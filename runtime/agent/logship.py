"""Log shipping and live stats: the agent side of the panel's live views (panel/live).

Logs
----
Every container with a uid label (made by the panel) has its conmon k8s-file log tailed and its
entries appended to a capped Redis stream, ``berth:logs:<uid>`` (``XADD MAXLEN ~ maxlen``). The
stream id *is* the sequence number: entry ``n`` has id ``n-0``, so ``seq`` is strictly increasing
per container (across recreations of the container too) and a reader resumes with
``XRANGE (n-0 +``. Fields: ``ts`` (conmon's RFC 3339 with nanoseconds), ``stream``
(stdout|stderr), ``text``.

Exactly once across agent restarts: after each batch, in one MULTI/EXEC transaction, the
entries are added and ``berth:logship:<uid>`` (``runtime_id``, ``offset``, ``seq``) is updated
to the byte offset just past the last *complete* entry. A restarted shipper reads that hash and
continues from the offset with the next seq: a crash before EXEC re-ships the batch (nothing of
it was written), a crash after it ships nothing twice.

Stats
-----
The panel's stats consumer sets ``berth:stats-watch:<uid>`` (a key with a short expiry) while
someone looks at a container. For each watched running container of this host the shipper
samples stats once a second and adds them to ``berth:stats:<uid>`` (capped); all viewers read
that one stream, so many viewers cost the host one sample a second.

Downloads
---------
The full on-disk log is streamed on request: the panel pushes ``{"uid", "token",
"timestamps"}`` onto ``berth:logship:requests:<host>``; the shipper writes the formatted log
in chunks onto the list ``berth:download:<token>`` and ends it with an empty chunk (an error
is a chunk starting with ``\\x00error:``). The list expires when nobody reads it.

Run inside the agent (``LogShipper(host, redis_url, host_name).start()``) or standalone::

    python -m runtime.agent.logship --host-name NAME [--state-dir DIR] [--redis-url URL]

A lock file in the state dir makes sure one shipper serves a state dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from runtime import fsutil
from runtime.containers.logs import LogEntry, _Assembler, docker_timestamp
from runtime.containers.record import Container
from runtime.host import Host
from runtime.protocol import UID_LABEL

log = logging.getLogger("berth.logship")

DEFAULT_MAXLEN = 100_000
STATS_MAXLEN = 600
MAX_TEXT = 16_384  # longer entries are cut (the full text stays in the on-disk log)
DOWNLOAD_CHUNK = 256 * 1024
DOWNLOAD_TTL = 120


def log_stream_key(uid: str) -> str:
    return f"berth:logs:{uid}"


def state_key(uid: str) -> str:
    return f"berth:logship:{uid}"


def stats_stream_key(uid: str) -> str:
    return f"berth:stats:{uid}"


def stats_watch_key(uid: str) -> str:
    return f"berth:stats-watch:{uid}"


def requests_key(host_name: str) -> str:
    return f"berth:logship:requests:{host_name}"


def download_key(token: str) -> str:
    return f"berth:download:{token}"


@dataclass
class _Tail:
    """The read position in one container's log file."""

    uid: str
    runtime_id: str
    path: Path
    offset: int  # just past the last complete entry shipped
    seq: int  # seq of the last entry shipped
    read_to: int = 0  # how far the file has been read (>= offset)
    assembler: _Assembler = field(default_factory=_Assembler)
    buffer: bytes = b""
    handle: Any = None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class LogShipper:
    """Tails the logs of this host's panel containers into Redis; samples watched stats;
    answers download requests. Three daemon threads; `stop()` ends them."""

    def __init__(self, host: Host, redis_url: str, host_name: str,
                 maxlen: int = DEFAULT_MAXLEN, poll_interval: float = 0.02,
                 scan_interval: float = 1.0, stats_interval: float = 1.0):
        self.host = host
        self.host_name = host_name
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=30,
                                          health_check_interval=30)
        self.maxlen = maxlen
        self.poll_interval = poll_interval
        self.scan_interval = scan_interval
        self.stats_interval = stats_interval
        self.tails: dict[str, _Tail] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock_fd: int | None = None
        from runtime.agent.transfers import Transfers

        self.transfers = Transfers(host, self.redis, redis_url, host_name)

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the threads; False (and nothing started) when another shipper serves this
        state dir."""
        fd = fsutil.try_lock(Path(self.host.root) / "agent" / "logship.lock")
        if fd is None:
            log.warning("another log shipper serves %s; not starting a second", self.host.root)
            return False
        self._lock_fd = fd
        self.transfers.start()
        for name, target in (("berth-logship", self._ship_loop),
                             ("berth-stats", self._stats_loop),
                             ("berth-downloads", self._request_loop)):
            thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._threads:
            self.transfers.stop()
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()
        for tail in self.tails.values():
            tail.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _guard(self, target: Any) -> None:
        """Run `target` until stopped; a Redis outage or a bug is logged and retried."""
        while not self._stop.is_set():
            try:
                target()
            except redis.RedisError as exc:
                log.warning("%s: Redis unavailable (%s); retrying", target.__name__, exc)
                self._stop.wait(1.0)
            except Exception:  # keep shipping whatever one container's log holds
                log.exception("%s failed; restarting it", target.__name__)
                self._stop.wait(1.0)

    # -- logs ----------------------------------------------------------------------------------
    def _panel_containers(self) -> dict[str, Container]:
        """The newest runtime container of each uid on this host."""
        newest: dict[str, Container] = {}
        for container in self.host.containers.store.all():
            uid = container.labels.get(UID_LABEL, "")
            if uid and (uid not in newest or container.created > newest[uid].created):
                newest[uid] = container
        return newest

    def scan(self) -> None:
        """Track new containers (resuming from their saved position), drop removed ones."""
        current = self._panel_containers()
        for uid in list(self.tails):
            if uid not in current:
                self.tails.pop(uid).close()
        for uid, container in current.items():
            tail = self.tails.get(uid)
            if tail is not None and tail.runtime_id == container.id:
                continue
            if tail is not None:
                self.ship(tail)  # finish the old file before following the new one
                tail.close()
            self.tails[uid] = self._resume(uid, container)

    def _resume(self, uid: str, container: Container) -> _Tail:
        raw: dict[bytes, bytes] = self.redis.hgetall(state_key(uid))  # type: ignore[assignment]
        saved = {k.decode(): v.decode() for k, v in raw.items()}
        seq = int(saved.get("seq", 0))
        offset = int(saved.get("offset", 0)) if saved.get("runtime_id") == container.id else 0
        return _Tail(uid, container.id, container.log_path, offset, seq, read_to=offset)

    def ship(self, tail: _Tail) -> int:
        """Ship what was appended to `tail`'s file; the number of entries shipped."""
        if tail.handle is None:
            try:
                tail.handle = open(tail.path, "rb")
            except FileNotFoundError:
                return 0
            tail.handle.seek(tail.read_to)
        size = os.fstat(tail.handle.fileno()).st_size
        if size < tail.read_to:  # truncated: start over at the beginning of the new content
            tail.offset = tail.read_to = 0
            tail.buffer, tail.assembler = b"", _Assembler()
            tail.handle.seek(0)
        chunk = tail.handle.read(4 * 1024 * 1024)
        if not chunk:
            return 0
        tail.read_to += len(chunk)
        data = tail.buffer + chunk
        *records, tail.buffer = data.split(b"\n")
        position = tail.read_to - len(tail.buffer) - sum(len(r) + 1 for r in records)
        entries: list[LogEntry] = []
        offset = tail.offset
        for raw in records:
            position += len(raw) + 1
            entry = tail.assembler.feed(raw.decode("utf-8", errors="replace"))
            if entry is not None:
                entries.append(entry)
            if not tail.assembler.pending:
                offset = position  # a restart may resume here: no entry is half-read
        if entries:
            self._write(tail, entries, offset)
        else:
            tail.offset = offset
        return len(entries)

    def _write(self, tail: _Tail, entries: list[LogEntry], offset: int) -> None:
        key = log_stream_key(tail.uid)
        with self.redis.pipeline(transaction=True) as pipe:
            seq = tail.seq
            for entry in entries:
                seq += 1
                text = entry.text if len(entry.text) <= MAX_TEXT else \
                    entry.text[:MAX_TEXT] + " …[cut; the full line is in the downloaded log]"
                pipe.xadd(key, {"ts": entry.timestamp, "stream": entry.stream, "text": text},
                          id=f"{seq}-0", maxlen=self.maxlen, approximate=True)
            pipe.hset(state_key(tail.uid), mapping={"runtime_id": tail.runtime_id,
                                                    "offset": offset, "seq": seq})
            pipe.execute()
        tail.seq, tail.offset = seq, offset

    def _ship_loop(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_scan:
                self.scan()
                next_scan = time.monotonic() + self.scan_interval
            shipped = sum(self.ship(tail) for tail in list(self.tails.values()))
            if not shipped:
                self._stop.wait(self.poll_interval)

    # -- stats ---------------------------------------------------------------------------------
    def _stats_loop(self) -> None:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-stats") as pool:
            while not self._stop.is_set():
                began = time.monotonic()
                containers = self._panel_containers()
                watched = [(uid, c) for uid, c in containers.items()
                           if c.status in ("running", "paused")] if containers else []
                if watched:
                    flags = self.redis.exists(*[stats_watch_key(uid) for uid, _ in watched]) \
                        if len(watched) == 1 else None
                    if flags is None:
                        with self.redis.pipeline(transaction=False) as pipe:
                            for uid, _ in watched:
                                pipe.exists(stats_watch_key(uid))
                            answers = pipe.execute()
                    else:
                        answers = [flags]
                    wanted = [(uid, c) for (uid, c), on in zip(watched, answers, strict=True)
                              if on]
                    list(pool.map(lambda item: self._sample(*item), wanted))
                self._stop.wait(max(0.05, self.stats_interval - (time.monotonic() - began)))

    def _sample(self, uid: str, container: Container) -> None:
        try:
            stats = self.host.containers.stats(container.id, interval=0.5).to_json()
        except Exception as exc:  # stopped between the check and the sample
            log.debug("stats of %s: %s", container.name, exc)
            return
        stats["time"] = time.time()
        self.redis.xadd(stats_stream_key(uid), {"json": json.dumps(stats)},
                        maxlen=STATS_MAXLEN, approximate=True)

    # -- downloads -----------------------------------------------------------------------------
    def _request_loop(self) -> None:
        while not self._stop.is_set():
            item = self.redis.blpop([requests_key(self.host_name)], timeout=1)
            if item is None:
                continue
            try:
                request = json.loads(item[1])
                if request.get("kind", "log") == "log":
                    self.send_log(str(request["uid"]), str(request["token"]),
                                  bool(request.get("timestamps")))
                else:  # files to and from the host (images, volume backups)
                    threading.Thread(target=self.transfers.handle, args=(request,),
                                     name="berth-transfer", daemon=True).start()
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("bad download request %r: %s", item[1][:200], exc)

    def send_log(self, uid: str, token: str, timestamps: bool) -> None:
        """Stream the full on-disk log of `uid` onto `berth:download:<token>`."""
        key = download_key(token)
        container = self._panel_containers().get(uid)
        if container is None:
            self.redis.rpush(key, b"\x00error:no container with this uid on this host", b"")
            self.redis.expire(key, DOWNLOAD_TTL)
            return
        for chunk in _formatted_chunks(container.log_path, timestamps):
            # Back-pressure: wait while the reader is far behind (it pops chunks as it sends).
            while self.redis.llen(key) > 32 and not self._stop.is_set():
                if self.redis.ttl(key) == -2:
                    return  # the reader went away and the list expired
                time.sleep(0.05)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, chunk)
                pipe.expire(key, DOWNLOAD_TTL)
                pipe.execute()
        self.redis.rpush(key, b"")
        self.redis.expire(key, DOWNLOAD_TTL)


def _formatted_chunks(path: Path, timestamps: bool) -> Iterator[bytes]:
    """The log as `docker logs [-t]` prints it, in chunks of about DOWNLOAD_CHUNK bytes."""
    assembler = _Assembler()
    parts: list[str] = []
    size = 0
    try:
        handle = open(path, encoding="utf-8", errors="replace", newline="\n")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            entry = assembler.feed(line)
            if entry is None:
                continue
            text = (f"{docker_timestamp(entry.timestamp)} " if timestamps else "") + \
                entry.text + "\n"
            parts.append(text)
            size += len(text)
            if size >= DOWNLOAD_CHUNK:
                yield "".join(parts).encode()
                parts, size = [], 0
    for entry in assembler.flush():
        parts.append((f"{docker_timestamp(entry.timestamp)} " if timestamps else "") + entry.text)
    if parts:
        yield "".join(parts).encode()


def main(argv: list[str] | None = None) -> int:
    """Standalone shipper (the agent runs one itself once hooked in)."""
    parser = argparse.ArgumentParser(prog="python -m runtime.agent.logship",
                                     description="Ship container logs and stats into Redis.")
    parser.add_argument("--host-name", required=True)
    parser.add_argument("--state-dir", default=os.environ.get("BERTH_STATE_DIR",
                                                              "/var/lib/berth"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL",
                                                              "redis://127.0.0.1:6379/0"))
    parser.add_argument("--maxlen", type=int, default=DEFAULT_MAXLEN)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shipper = LogShipper(Host(Path(args.state_dir)), args.redis_url, args.host_name,
                         maxlen=args.maxlen)
    if not shipper.start():
        return 1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    shipper.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
