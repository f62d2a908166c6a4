"""What a heartbeat says about this host (`runtime.protocol`, "Heartbeat inventory")."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from runtime.agent import AGENT_VERSION


def memory_info() -> tuple[int, int]:
    """Total and available memory in bytes, from /proc/meminfo."""
    values: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0]) * 1024
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def disk_usage(path: Path) -> dict[str, int]:
    """Total, used and free bytes of the filesystem holding `path`."""
    usage = shutil.disk_usage(path)
    return {"total": usage.total, "used": usage.used, "free": usage.free}


@functools.cache
def tool_version(binary: str) -> str:
    """`BINARY --version`'s version number ("" when the tool is missing); asked once."""
    path = shutil.which(binary)
    if path is None:
        return ""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    first = (out.stdout or out.stderr).strip().splitlines()[:1]
    words = first[0].split() if first else []
    return next((w for w in words if w[:1].isdigit()), first[0] if first else "")


def collect(state_dir: Path, labels: dict[str, str], containers_running: int) -> dict[str, Any]:
    """The heartbeat inventory of this host."""
    total, available = memory_info()
    return {
        "cpus": os.cpu_count() or 1,
        "load": list(os.getloadavg()),
        "memory": total,
        "memory_available": available,
        "disk": disk_usage(state_dir),
        "kernel": os.uname().release,
        "versions": {"runc": tool_version("runc"), "conmon": tool_version("conmon"),
                     "berth": AGENT_VERSION},
        "labels": dict(labels),
        "containers_running": containers_running,
        "sent_at": time.time(),
    }
