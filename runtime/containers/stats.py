"""Container statistics as `docker stats` shows them.

CPU, memory, pids and block I/O come from the OCI runtime's `events --stats` (it reads cgroup v1
and v2 alike); network I/O from /proc/PID/net/dev, which shows the container's own namespace.
CPU % is docker's formula: the container's CPU time delta over the host's CPU time delta between
two samples, times the number of CPUs.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from runtime.containers.ociruntime import OCIRuntime
from runtime.containers.record import Container

SAMPLE_INTERVAL = 0.5


@dataclass
class Stats:
    id: str
    name: str
    cpu_percent: float
    memory_usage: int
    memory_limit: int
    memory_percent: float
    pids: int
    block_read: int
    block_write: int
    net_rx: int
    net_tx: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def host_cpu_ns() -> int:
    """Total CPU time of the host (all CPUs, all modes) in nanoseconds, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    ticks = sum(int(v) for v in fields[:8])  # guest time is already inside user/nice
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def network_io(pid: int) -> tuple[int, int]:
    """Received and transmitted bytes over every interface of the process's namespace
    (loopback included when it is the only one, as with loopback-only containers)."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(":")
        values = data.split()
        if len(values) >= 9:
            rx += int(values[0])
            tx += int(values[8])
    return rx, tx


def _memory(data: dict[str, Any]) -> tuple[int, int]:
    """Usage without the page cache that can be reclaimed (docker's `usage - inactive_file`)."""
    memory = data.get("memory") or {}
    usage = int((memory.get("usage") or {}).get("usage") or 0)
    raw = memory.get("raw") or {}
    inactive = int(raw.get("total_inactive_file", raw.get("inactive_file", 0)) or 0)
    if inactive < usage:
        usage -= inactive
    limit = int((memory.get("usage") or {}).get("limit") or 0)
    total = host_memory()
    if limit <= 0 or (total and limit > total):
        limit = total
    return usage, limit


def _block(data: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in (data.get("blkio") or {}).get("ioServiceBytesRecursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value") or 0)
        elif op == "write":
            write += int(entry.get("value") or 0)
    return read, write


def _cpu_total(data: dict[str, Any]) -> int:
    return int(((data.get("cpu") or {}).get("usage") or {}).get("total") or 0)


def sample(container: Container, runtime: OCIRuntime, interval: float = SAMPLE_INTERVAL,
           ) -> Stats:
    """Two samples `interval` seconds apart; the second one's values plus the CPU % between."""
    first = runtime.stats(container.id)
    host_first = host_cpu_ns()
    time.sleep(interval)
    second = runtime.stats(container.id)
    host_second = host_cpu_ns()
    cpu_delta = _cpu_total(second) - _cpu_total(first)
    host_delta = host_second - host_first
    cpus = os.cpu_count() or 1
    cpu_percent = cpu_delta / host_delta * cpus * 100.0 if host_delta > 0 and cpu_delta > 0 else 0.0
    usage, limit = _memory(second)
    block_read, block_write = _block(second)
    rx, tx = network_io(int(container.state.get("Pid") or 0))
    return Stats(
        id=container.id, name=container.name, cpu_percent=round(cpu_percent, 2),
        memory_usage=usage, memory_limit=limit,
        memory_percent=round(usage / limit * 100.0, 2) if limit else 0.0,
        pids=int((second.get("pids") or {}).get("current") or 0),
        block_read=block_read, block_write=block_write, net_rx=rx, net_tx=tx,
    )
