"""The OCI runtime config (config.json) for a container, with Docker's secure defaults.

Defaults, as Docker's engine sets them:
1. only Docker's default capability set, and none at all in the effective/permitted sets for a
   non-root user (the kernel would drop them on exec anyway; runc would otherwise keep them);
2. no-new-privileges;
3. /proc and /sys paths masked or read-only as in moby's `oci/defaults.go`;
4. a default pids limit, RLIMIT_NOFILE 1024:1024 (never above this host's hard limit);
5. devices: deny all but the runtime's standard set (null, zero, full, tty, random, urandom, pts);
6. new pid, ipc, uts, mount and network namespaces; the network one is filled in by the network
   seam (`network.py`), loopback-only by default;
7. in a container's own network namespace, any user may bind ports below 1024 and open ICMP
   echo sockets (Docker's sysctls since 20.10: an image with `USER app` can still serve on :80);
8. the system's default seccomp profile (seccomp.py), when the host has one.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from runtime.containers import seccomp
from runtime.containers.users import ResolvedUser

OCI_VERSION = "1.0.2-dev"
DEFAULT_PIDS_LIMIT = 2048
INIT_PATH = "/dev/init"  # where tini is bind-mounted for --init (a tmpfs: nothing left in upper)
TINI_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/tini")

DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]
DEFAULT_NOFILE = 1024
# Docker's namespaced sysctls for containers that do not share the host's network namespace.
NETWORK_SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}


def base_mounts() -> list[dict[str, Any]]:
    """The kernel filesystems every container gets (Docker's set, /sys/fs/cgroup read-only)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


def tini_path() -> str | None:
    """The host's tini binary for `--init` (the static build first: it needs no libraries)."""
    return next((p for p in TINI_CANDIDATES if os.path.exists(p)), None)


def nofile_limit() -> tuple[int, int]:
    """RLIMIT_NOFILE for containers: 1024:1024, capped at this host's hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)
    return cap, cap


def memsw_supported() -> bool:
    """Whether the memory cgroup accounts swap (runc fails on memory.swap when it does not)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def resources(host_config: dict[str, Any]) -> dict[str, Any]:
    """linux.resources from docker's HostConfig fields (Memory, NanoCpus, PidsLimit)."""
    result: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    memory = int(host_config.get("Memory") or 0)
    if memory > 0:
        # swap = memory: no swap on top of the limit, so an over-limit container is OOM-killed
        # instead of crawling through swap (docker's --memory-swap equal to --memory)
        result["memory"] = {"limit": memory, **({"swap": memory} if memsw_supported() else {})}
    nano_cpus = int(host_config.get("NanoCpus") or 0)
    if nano_cpus > 0:
        period = 100_000
        result["cpu"] = {"quota": nano_cpus * period // 1_000_000_000, "period": period}
    pids = host_config.get("PidsLimit")
    result["pids"] = {"limit": DEFAULT_PIDS_LIMIT if pids is None else int(pids)}
    return result


def process_args(config: dict[str, Any], init: bool) -> list[str]:
    """Entrypoint + Cmd, behind tini when `init` is set (`-s`: tini as a subreaper too)."""
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    return [INIT_PATH, "-s", "--", *args] if init else args


def build_spec(
    container_id: str,
    config: dict[str, Any],
    host_config: dict[str, Any],
    user: ResolvedUser,
    mounts: list[dict[str, Any]],
    network_namespace: str | None,
    cgroups_path: str,
) -> dict[str, Any]:
    """The whole config.json.

    `config`/`host_config` are the docker-shaped records (Cmd, Env, WorkingDir… and Memory,
    NanoCpus, PidsLimit, ReadonlyRootfs, Init); `mounts` are extra OCI mounts (volumes, binds,
    /etc/hosts…); `network_namespace` is a path to join, or None for a new loopback-only one."""
    init = bool(host_config.get("Init"))
    capabilities = DEFAULT_CAPABILITIES if user.uid == 0 else []
    soft, hard = nofile_limit()
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    namespaces.append({"type": "network", **({"path": network_namespace}
                                               if network_namespace else {})})
    all_mounts = base_mounts() + mounts
    seccomp_filter = seccomp.default_filter(DEFAULT_CAPABILITIES)
    if init:
        tini = tini_path()
        if tini is not None:
            all_mounts.append({"destination": INIT_PATH, "type": "bind", "source": tini,
                               "options": ["bind", "ro", "nosuid", "nodev"]})
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid,
                     **({"additionalGids": user.additional_gids} if user.additional_gids else {})},
            "args": process_args(config, init),
            "env": list(config.get("Env") or []),
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPABILITIES),
                "effective": list(capabilities),
                "permitted": list(capabilities),
                "inheritable": [],
                "ambient": [],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}],
            "noNewPrivileges": True,
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": config.get("Hostname") or container_id[:12],
        "mounts": all_mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources(host_config),
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            **({"sysctl": dict(NETWORK_SYSCTLS)}
               if host_config.get("NetworkMode") != "host" else {}),
            **({"seccomp": seccomp_filter} if seccomp_filter else {}),
        },
    }


def bind_mount(source: Path | str, destination: str, read_only: bool) -> dict[str, Any]:
    """An OCI bind mount entry (private propagation, as docker's default)."""
    options = ["rbind", "rprivate"]
    if read_only:
        options.append("ro")
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}
