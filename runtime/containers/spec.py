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

The kernel-facing HostConfig fields (kernel_options.py) change these defaults only when set:
CapAdd/CapDrop the capability set (docker's rules), Privileged every capability, every host
device, no seccomp filter and no masked or read-only paths, /sys and /sys/fs/cgroup writable;
SecurityOpt no-new-privileges:false, seccomp=unconfined|FILE, systempaths=unconfined; Devices
device nodes plus their cgroup allow rules; Sysctls and Ulimits; Tmpfs mounts; ShmSize the size
of /dev/shm; PidMode/IpcMode host (no namespace of their own) or another container's IPC
namespace; MemoryReservation the cgroup's soft limit.
"""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path
from typing import Any

from runtime.containers import seccomp
from runtime.containers.kernel_options import (
    DEFAULT_SHM_SIZE,
    effective_capabilities,
    security_settings,
    tmpfs_mount_options,
)
from runtime.containers.users import ResolvedUser
from runtime.errors import InvalidArgument

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
RLIM_INFINITY = 2**64 - 1
# /dev entries a privileged container does not get from the host: pseudo-filesystems it mounts
# itself, and the nodes the runtime creates (or links) in every container
HOST_DEV_SKIP = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev")
RUNTIME_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                   "/dev/tty", "/dev/ptmx", "/dev/console")
# Docker's namespaced sysctls for containers that do not share the host's network namespace.
NETWORK_SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}


def base_mounts(host_config: dict[str, Any] | None = None,
                shm_source: str | None = None) -> list[dict[str, Any]]:
    """The kernel filesystems every container gets (Docker's set, /sys and /sys/fs/cgroup
    read-only unless privileged). /dev/shm is a tmpfs of ShmSize bytes (64 MiB by default), or
    a bind of `shm_source` (the host's or another container's, for a shared IPC namespace)."""
    host_config = host_config or {}
    privileged = bool(host_config.get("Privileged"))
    sys_options = ["nosuid", "noexec", "nodev", *([] if privileged else ["ro"])]
    shm_size = int(host_config.get("ShmSize") or DEFAULT_SHM_SIZE)
    shm: dict[str, Any] = (
        {"destination": "/dev/shm", "type": "bind", "source": shm_source,
         "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}
        if shm_source else
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]})
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*([] if privileged else ["ro"]), "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        shm,
    ]


def tmpfs_mounts(host_config: dict[str, Any]) -> list[dict[str, Any]]:
    """HostConfig.Tmpfs as OCI tmpfs mounts (docker's noexec, nosuid, nodev unless told)."""
    return [{"destination": path, "type": "tmpfs", "source": "tmpfs",
             "options": tmpfs_mount_options(text)}
            for path, text in sorted((host_config.get("Tmpfs") or {}).items(),
                                     key=lambda item: item[0].count("/"))]


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


def resources(host_config: dict[str, Any],
              device_rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """linux.resources from docker's HostConfig fields (Memory, MemoryReservation, NanoCpus,
    PidsLimit) and the cgroup device rules: deny all, then allow what `device_rules` name."""
    result: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"},
                                          *(device_rules or [])]}
    memory = int(host_config.get("Memory") or 0)
    reservation = int(host_config.get("MemoryReservation") or 0)
    if memory > 0 or reservation > 0:
        # swap = memory: no swap on top of the limit, so an over-limit container is OOM-killed
        # instead of crawling through swap (docker's --memory-swap equal to --memory)
        result["memory"] = {**({"limit": memory} if memory > 0 else {}),
                            **({"swap": memory} if memory > 0 and memsw_supported() else {}),
                            # the soft limit: memory.low (cgroup v2) / soft_limit_in_bytes (v1)
                            **({"reservation": reservation} if reservation > 0 else {})}
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


def _device_node(host_path: str, container_path: str) -> dict[str, Any] | None:
    """An OCI linux.devices entry for the host's device node (None if it is not one)."""
    try:
        info = os.stat(host_path)
    except OSError:
        return None
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(info.st_rdev),
            "minor": os.minor(info.st_rdev), "fileMode": stat.S_IMODE(info.st_mode),
            "uid": info.st_uid, "gid": info.st_gid}


def _devices_below(directory: str) -> list[str]:
    """The device nodes under `directory` (symlinks and pseudo-filesystems skipped)."""
    found = []
    for current, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if os.path.join(current, d) not in HOST_DEV_SKIP)
        for name in sorted(files):
            path = os.path.join(current, name)
            if not os.path.islink(path) and _device_node(path, path) is not None:
                found.append(path)
    return found


def devices(host_config: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """linux.devices and their cgroup allow rules: every host device for a privileged
    container (and a rule allowing all), then each HostConfig.Devices entry (a directory
    brings every device below it). Device numbers are read now, at each start, as docker
    does: they may differ after a reboot."""
    nodes: dict[str, dict[str, Any]] = {}
    rules: list[dict[str, Any]] = []
    if host_config.get("Privileged"):
        for path in _devices_below("/dev"):
            node = _device_node(path, path)
            if node is not None and path not in RUNTIME_DEVICES:
                nodes[path] = node
        rules.append({"allow": True, "access": "rwm"})
    for entry in host_config.get("Devices") or []:
        host_path, target = entry["PathOnHost"], entry["PathInContainer"]
        pairs = ([(p, os.path.join(target, os.path.relpath(p, host_path)))
                  for p in _devices_below(host_path)]
                 if os.path.isdir(host_path) else [(host_path, target)])
        for source, destination in pairs:
            node = _device_node(source, destination)
            if node is None:
                raise InvalidArgument(f"device {source} (devices {host_path}:{target}) is no "
                                      "longer a device node on this host")
            nodes[destination] = node
            rules.append({"allow": True, "type": node["type"], "major": node["major"],
                          "minor": node["minor"], "access": entry.get("CgroupPermissions")
                          or "rwm"})
    return list(nodes.values()), rules


def rlimits(host_config: dict[str, Any]) -> list[dict[str, Any]]:
    """process.rlimits: RLIMIT_NOFILE 1024:1024 unless HostConfig.Ulimits says otherwise, then
    each of those (-1 = unlimited)."""
    limits = {"nofile": nofile_limit()}
    for entry in host_config.get("Ulimits") or []:
        limits[entry["Name"]] = (int(entry["Soft"]), int(entry["Hard"]))
    return [{"type": f"RLIMIT_{name.upper()}", "soft": _rlimit(soft), "hard": _rlimit(hard)}
            for name, (soft, hard) in limits.items()]


def _rlimit(value: int) -> int:
    return RLIM_INFINITY if value == -1 else value


def sysctls(host_config: dict[str, Any]) -> dict[str, str]:
    """linux.sysctl: docker's network ones in the container's own network namespace, then the
    user's (which may override them)."""
    mode = str(host_config.get("NetworkMode") or "")
    own_network = mode != "host" and not mode.startswith("container:")
    return {**(NETWORK_SYSCTLS if own_network else {}), **(host_config.get("Sysctls") or {})}


def build_spec(
    container_id: str,
    config: dict[str, Any],
    host_config: dict[str, Any],
    user: ResolvedUser,
    mounts: list[dict[str, Any]],
    network_namespace: str | None,
    cgroups_path: str,
    ipc_namespace: str | None = None,
    shm_source: str | None = None,
) -> dict[str, Any]:
    """The whole config.json.

    `config`/`host_config` are the docker-shaped records (Cmd, Env, WorkingDir… and Memory,
    NanoCpus, PidsLimit, ReadonlyRootfs, Init, CapAdd/CapDrop, Privileged, SecurityOpt,
    Devices, Sysctls, Ulimits, Tmpfs, ShmSize, PidMode, IpcMode); `mounts` are extra OCI mounts
    (volumes, binds, /etc/hosts…); `network_namespace` is a path to join, or None for a new
    loopback-only one; `ipc_namespace` likewise (another container's), with `shm_source` the
    /dev/shm to bind (the host's or that container's)."""
    init = bool(host_config.get("Init"))
    privileged = bool(host_config.get("Privileged"))
    security = security_settings(list(host_config.get("SecurityOpt") or []))
    bounding = effective_capabilities(host_config, DEFAULT_CAPABILITIES)
    capabilities = bounding if user.uid == 0 else []
    namespaces: list[dict[str, str]] = [{"type": t} for t in ("uts", "mount")]
    if host_config.get("PidMode") != "host":
        namespaces.insert(0, {"type": "pid"})
    if host_config.get("IpcMode") != "host":
        namespaces.append({"type": "ipc", **({"path": ipc_namespace} if ipc_namespace else {})})
    if host_config.get("NetworkMode") != "host" or network_namespace is not None:
        namespaces.append({"type": "network", **({"path": network_namespace}
                                                   if network_namespace else {})})
    all_mounts = base_mounts(host_config, shm_source) + tmpfs_mounts(host_config) + mounts
    if privileged or security.get("seccomp") == seccomp.UNCONFINED:
        seccomp_filter = None
    elif host_config.get("SeccompProfile"):
        seccomp_filter = seccomp.profile_filter(host_config["SeccompProfile"], bounding)
    else:
        seccomp_filter = seccomp.default_filter(bounding)
    system_paths = not privileged and security.get("systempaths") != "unconfined"
    if init:
        tini = tini_path()
        if tini is not None:
            all_mounts.append({"destination": INIT_PATH, "type": "bind", "source": tini,
                               "options": ["bind", "ro", "nosuid", "nodev"]})
    device_nodes, device_rules = devices(host_config)
    groups = list(user.additional_gids)  # the user's groups and group_add, resolved
    kernel_settings = sysctls(host_config)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid,
                     **({"additionalGids": groups} if groups else {})},
            "args": process_args(config, init),
            "env": list(config.get("Env") or []),
            "cwd": config.get("WorkingDir") or "/",
            "capabilities": {
                "bounding": list(bounding),
                "effective": list(capabilities),
                "permitted": list(capabilities),
                "inheritable": [],
                "ambient": [],
            },
            "rlimits": rlimits(host_config),
            "noNewPrivileges": security.get("no-new-privileges", "true") == "true",
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": config.get("Hostname") or container_id[:12],
        "mounts": all_mounts,
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": resources(host_config, device_rules),
            "namespaces": namespaces,
            **({"devices": device_nodes} if device_nodes else {}),
            "maskedPaths": list(MASKED_PATHS) if system_paths else [],
            "readonlyPaths": list(READONLY_PATHS) if system_paths else [],
            **({"sysctl": kernel_settings} if kernel_settings else {}),
            **({"seccomp": seccomp_filter} if seccomp_filter else {}),
        },
    }


def bind_mount(source: Path | str, destination: str, read_only: bool) -> dict[str, Any]:
    """An OCI bind mount entry (private propagation, as docker's default)."""
    options = ["rbind", "rprivate"]
    if read_only:
        options.append("ro")
    return {"destination": destination, "type": "bind", "source": str(source), "options": options}
