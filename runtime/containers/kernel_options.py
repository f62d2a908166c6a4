"""The kernel-facing run options: capabilities, devices, sysctls, rlimits, tmpfs, /dev/shm, name
resolution, namespaces, logging and platform — strict parsers into docker's HostConfig fields.

Each parser takes the container spec's value (`RunOptions.<field>`, the CLI fills it from docker's
flags) and returns what the record keeps under docker's HostConfig name (`CapAdd`, `Devices`,
`Sysctls`, `Ulimits`…), so `inspect` prints it as docker does. A bad value raises
`InvalidArgument` naming the field (with its docker flag) and what is allowed, before anything is
created. `host_options` runs them all and refuses contradictory combinations.

What is left to the start of the container (spec.py, manager.py): device numbers (read from the
host's device node at each start, as docker does), the joined namespaces of another container,
the gateway `host-gateway` stands for.
"""

from __future__ import annotations

import ipaddress
import os
import platform as platform_module
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import InvalidArgument

if TYPE_CHECKING:
    from runtime.containers.options import RunOptions

# Linux capability numbers 0..40 (include/uapi/linux/capability.h), without the CAP_ prefix.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# The namespaced sysctls docker allows (moby `opts.ValidateSysctl`).
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
IPC_SYSCTL_PREFIXES = ("fs.mqueue.",)
NETWORK_SYSCTL_PREFIX = "net."
ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
TMPFS_FLAGS = ("ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime",
               "noatime", "relatime", "strictatime", "nodiratime")
TMPFS_VALUES = ("size", "mode", "uid", "gid", "nr_inodes")
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")  # docker's for --tmpfs
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DNS_OPTIONS = ("ndots", "timeout", "attempts", "rotate", "edns0", "single-request",
               "single-request-reopen", "no-tld-query", "use-vc", "no-reload", "trust-ad",
               "inet6", "debug", "no-aaaa")
DNS_OPTIONS_WITH_VALUE = ("ndots", "timeout", "attempts")
IPC_MODES = ("", "private", "shareable", "host")
PID_MODES = ("", "host")
LOG_DRIVERS = ("json-file", "local", "none")
LOG_OPTIONS = ("max-size", "max-file")
# docker's `local` driver keeps 5 files of 20 MB unless told otherwise
LOCAL_LOG_DEFAULTS = {"max-size": "20m", "max-file": "5"}
HOST_GATEWAY = "host-gateway"
SECURITY_OPTS = ("no-new-privileges", "seccomp", "apparmor", "label", "systempaths")

_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+([./][a-zA-Z0-9_@:+-]+)+$")
_DNS_OPTION = re.compile(r"^([a-z0-9-]+)(?::(\d+))?$")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# platform.machine() → (OCI architecture, variant)
_HOST_ARCHES = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
                "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""),
                "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}


def _strings(value: Any, field: str) -> list[str]:
    """A list of strings (a lone string is refused: it is almost always a missing list)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{field} must be a list of strings, not {value!r}")
    return [v.strip() for v in value]


def parse_size(value: int | str | None, field: str) -> int:
    """Bytes, or a number with b/k/m/g/t (docker's units, 1024-based); 0/None/"" = unset."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {field} {value!r}: use bytes or a size such as 64m")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"invalid {field} {value!r}: a size cannot be negative")
        return value
    match = _SIZE.fullmatch(str(value).lower())
    if not match:
        raise InvalidArgument(f"invalid {field} {value!r}: use bytes or a number with a unit "
                              "b, k, m, g (e.g. 64m)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


# -- capabilities and security options -----------------------------------------------------------
def host_capabilities() -> list[str]:
    """Every capability a container can be given here (CAP_-less names), for `privileged` and
    `ALL`: those this kernel knows that are in this process's own bounding set (the runtime
    cannot grant more than it has, e.g. when the host itself runs confined)."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(CAPABILITIES) - 1
    bounding = (1 << (last + 1)) - 1
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                bounding = int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return [name for bit, name in enumerate(CAPABILITIES[:last + 1]) if bounding >> bit & 1]


def parse_capabilities(value: Any, field: str) -> list[str]:
    """`cap_add`/`cap_drop` (--cap-add/--cap-drop): names such as NET_ADMIN (CAP_ prefix and
    case are accepted, as docker does), or ALL. Returns upper-case names without CAP_."""
    names = []
    for entry in _strings(value, field):
        name = entry.upper().removeprefix("CAP_")
        if name != "ALL" and name not in CAPABILITIES:
            raise InvalidArgument(f"invalid {field} {entry!r}: not a Linux capability; use a "
                                  "name such as NET_ADMIN or SYS_PTRACE, or ALL")
        if name not in names:
            names.append(name)
    return names


def effective_capabilities(host_config: dict[str, Any], defaults: list[str]) -> list[str]:
    """The capability set of the container, as docker computes it (moby TweakCapabilities):
    privileged → all; ALL in cap_add → all but cap_drop; ALL in cap_drop → only cap_add;
    otherwise the defaults minus cap_drop plus cap_add. CAP_-prefixed names, kernel order."""
    everything = host_capabilities()
    add = list(host_config.get("CapAdd") or [])
    drop = list(host_config.get("CapDrop") or [])
    if host_config.get("Privileged"):
        chosen = set(everything)
    elif "ALL" in add:
        chosen = {c for c in everything if c not in drop}
    elif "ALL" in drop:
        chosen = set(add)
    else:
        chosen = {c.removeprefix("CAP_") for c in defaults if c.removeprefix("CAP_") not in drop}
        chosen |= set(add)
    return [f"CAP_{c}" for c in CAPABILITIES if c in chosen and c in everything]


def parse_security_opt(value: Any) -> list[str]:
    """`security_opt` (--security-opt): `no-new-privileges[:true|false]`, `seccomp=unconfined`
    or `seccomp=/abs/profile.json`, `systempaths=unconfined`, `apparmor=…` and `label=…` (both
    accepted and without effect: this host confines with seccomp and capabilities, not with
    AppArmor or SELinux). `KEY:VALUE` is read as `KEY=VALUE`, as docker does. Returns the
    entries normalised to `KEY=VALUE` (`no-new-privileges` alone becomes `=true`)."""
    parsed = []
    for entry in _strings(value, "security_opt (--security-opt)"):
        key, sep, option = entry.partition("=")
        if not sep:
            key, sep, option = entry.partition(":")
        if key not in SECURITY_OPTS:
            raise InvalidArgument(
                f"invalid security_opt (--security-opt) {entry!r}: allowed "
                "no-new-privileges[:true|false], seccomp=unconfined|/path/profile.json, "
                "systempaths=unconfined, apparmor=PROFILE, label=…")
        if key == "no-new-privileges":
            option = option or "true"
            if option not in ("true", "false"):
                raise InvalidArgument(f"invalid security_opt {entry!r}: no-new-privileges "
                                      "takes true or false")
        elif not option:
            raise InvalidArgument(f"invalid security_opt {entry!r}: {key} needs a value "
                                  f"({key}=…)")
        elif key == "seccomp" and option != "unconfined" and not option.startswith("/"):
            raise InvalidArgument(f"invalid security_opt {entry!r}: seccomp takes unconfined or "
                                  "the absolute path of a JSON profile")
        elif key == "systempaths" and option != "unconfined":
            raise InvalidArgument(f"invalid security_opt {entry!r}: the only systempaths value "
                                  "is unconfined")
        parsed.append(f"{key}={option}")
    return parsed


def security_settings(security_opt: list[str]) -> dict[str, str]:
    """The normalised `security_opt` entries as {key: value} (the last one of a key wins)."""
    return dict(entry.partition("=")[::2] for entry in security_opt)


def load_seccomp_profile(path: str) -> dict[str, Any]:
    """A docker-format seccomp profile file, read at create time (docker keeps its content
    too, so later edits of the file do not change the container)."""
    import json

    try:
        profile = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidArgument(f"cannot read seccomp profile {path!r} (--security-opt "
                              f"seccomp=…): {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"seccomp profile {path!r} is not JSON: {exc}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise InvalidArgument(f"seccomp profile {path!r} is not a seccomp profile: it needs a "
                              "defaultAction (docker's profile format)")
    return profile


# -- devices ------------------------------------------------------------------------------------
def parse_devices(value: Any) -> list[dict[str, str]]:
    """`devices` (--device): `/dev/host[:/dev/ctr][:rwm]`. The host path must be a character
    or block device, or a directory of them (all are added, as docker does). Returns docker's
    HostConfig.Devices entries."""
    devices = []
    for entry in _strings(value, "devices (--device)"):
        parts = entry.split(":")
        if len(parts) > 3 or not parts[0]:
            raise InvalidArgument(f"invalid devices (--device) {entry!r}: use "
                                  "/dev/host[:/dev/container[:rwm]]")
        host_path = parts[0]
        container_path = host_path
        permissions = "rwm"
        if len(parts) == 2:
            if _is_permissions(parts[1]):
                permissions = parts[1]
            else:
                container_path = parts[1]
        elif len(parts) == 3:
            container_path, permissions = parts[1], parts[2]
        if not _is_permissions(permissions):
            raise InvalidArgument(f"invalid devices (--device) {entry!r}: permissions are a "
                                  f"combination of r, w and m, not {permissions!r}")
        for path, role in ((host_path, "host"), (container_path, "container")):
            if not path.startswith("/") or ".." in path.split("/"):
                raise InvalidArgument(f"invalid devices (--device) {entry!r}: the {role} path "
                                      "must be absolute and without '..'")
        try:
            mode = os.stat(host_path).st_mode
        except OSError as exc:
            raise InvalidArgument(f"invalid devices (--device) {entry!r}: {host_path}: "
                                  f"{exc.strerror}") from None
        if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISDIR(mode)):
            raise InvalidArgument(f"invalid devices (--device) {entry!r}: {host_path} is not a "
                                  "device (nor a directory of devices)")
        devices.append({"PathOnHost": host_path, "PathInContainer": os.path.normpath(
            container_path), "CgroupPermissions": permissions})
    return devices


def _is_permissions(text: str) -> bool:
    return bool(text) and len(set(text)) == len(text) and set(text) <= set("rwm")


# -- sysctls and ulimits -------------------------------------------------------------------------
def parse_sysctls(value: Any) -> dict[str, str]:
    """`sysctls` (--sysctl KEY=VALUE): only namespaced ones, as docker allows them: net.*,
    kernel.msgmax/msgmnb/msgmni/sem/shmall/shmmax/shmmni/shm_rmid_forced and fs.mqueue.*.
    A dict or a list of KEY=VALUE; `/` separators are turned into dots."""
    if isinstance(value, list | tuple):
        items = []
        for entry in _strings(value, "sysctls (--sysctl)"):
            key, sep, setting = entry.partition("=")
            if not sep:
                raise InvalidArgument(f"invalid sysctls (--sysctl) {entry!r}: use KEY=VALUE")
            items.append((key, setting))
    elif isinstance(value, dict):
        items = list(value.items())
    elif value is None:
        items = []
    else:
        raise InvalidArgument(f"sysctls must be an object of KEY: VALUE, not {value!r}")
    result: dict[str, str] = {}
    for key, setting in items:
        if isinstance(setting, bool) or not isinstance(setting, str | int):
            raise InvalidArgument(f"invalid sysctls {key!r}: the value must be a string or a "
                                  f"number, not {setting!r}")
        key = str(key).strip().replace("/", ".")
        text = str(setting).strip()
        if not _SYSCTL_KEY.match(key):
            raise InvalidArgument(f"invalid sysctls key {key!r}: use a dotted name such as "
                                  "net.core.somaxconn")
        if "\n" in text or not text:
            raise InvalidArgument(f"invalid sysctls {key}={text!r}: the value must be one "
                                  "non-empty line")
        if not (key.startswith(NETWORK_SYSCTL_PREFIX) or is_ipc_sysctl(key)):
            raise InvalidArgument(
                f"sysctl {key!r} is not allowed: it is not namespaced, so it would change the "
                "host; allowed net.*, fs.mqueue.* and kernel.msgmax, msgmnb, msgmni, sem, "
                "shmall, shmmax, shmmni, shm_rmid_forced")
        result[key] = text
    return result


def interface_sysctls(sysctls: dict[str, str]) -> list[str]:
    """The keys that name one network interface (net.ipv4.conf.eth0.rp_filter…): they exist
    only once the container's interfaces are wired."""
    found = []
    for key in sysctls:
        parts = key.split(".")
        if (len(parts) > 4 and parts[0] == "net" and parts[2] in ("conf", "neigh")
                and parts[3] not in ("all", "default", "lo")):
            found.append(key)
    return found


def is_ipc_sysctl(key: str) -> bool:
    return key in IPC_SYSCTLS or key.startswith(IPC_SYSCTL_PREFIXES)


def parse_ulimits(value: Any) -> list[dict[str, Any]]:
    """`ulimits` (--ulimit NAME=SOFT[:HARD]): a dict {name: {"soft": n, "hard": n}} (or
    {name: n} for soft = hard, as compose allows) or a list of NAME=SOFT[:HARD]; -1 is
    unlimited. Returns docker's HostConfig.Ulimits [{"Name", "Soft", "Hard"}]."""
    items: list[tuple[str, Any, Any]] = []
    if isinstance(value, list | tuple):
        for entry in _strings(value, "ulimits (--ulimit)"):
            name, sep, limits = entry.partition("=")
            soft, _, hard = limits.partition(":")
            if not sep or not soft:
                raise InvalidArgument(f"invalid ulimits (--ulimit) {entry!r}: use "
                                      "NAME=SOFT[:HARD], e.g. nofile=1024:2048")
            items.append((name, soft, hard or soft))
    elif isinstance(value, dict):
        for name, limits in value.items():
            if isinstance(limits, dict):
                unknown = set(limits) - {"soft", "hard"}
                if unknown or "soft" not in limits or "hard" not in limits:
                    raise InvalidArgument(f"invalid ulimits.{name}: use {{\"soft\": N, "
                                          f"\"hard\": N}} or one number, not {limits!r}")
                items.append((str(name), limits["soft"], limits["hard"]))
            else:
                items.append((str(name), limits, limits))
    elif value is not None:
        raise InvalidArgument(f"ulimits must be an object of NAME: {{soft, hard}}, not {value!r}")
    result = []
    seen = set()
    for name, soft, hard in items:
        name = name.strip().lower()
        if name not in ULIMITS:
            raise InvalidArgument(f"invalid ulimits name {name!r}: allowed {', '.join(ULIMITS)}")
        if name in seen:
            raise InvalidArgument(f"ulimits {name!r} is given twice")
        seen.add(name)
        numbers = [_limit(name, v) for v in (soft, hard)]
        if _unlimited(numbers[0]) > _unlimited(numbers[1]):
            raise InvalidArgument(f"invalid ulimits {name}: the soft limit {numbers[0]} is "
                                  f"above the hard limit {numbers[1]}")
        if name == "nofile":
            ceiling = _nr_open()
            if any(n == -1 or n > ceiling for n in numbers):
                raise InvalidArgument(f"invalid ulimits nofile {numbers[0]}:{numbers[1]}: this "
                                      f"host allows at most {ceiling} open files per process "
                                      "(fs.nr_open), and not unlimited")
        result.append({"Name": name, "Soft": numbers[0], "Hard": numbers[1]})
    return result


def _nr_open() -> int:
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1024 * 1024


def _limit(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid ulimits {name} {value!r}: use a number (-1: unlimited)")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidArgument(f"invalid ulimits {name} {value!r}: use a number "
                              "(-1: unlimited)") from None
    if number < -1:
        raise InvalidArgument(f"invalid ulimits {name} {value!r}: use a number >= 0, or -1 for "
                              "unlimited")
    return number


def _unlimited(number: int) -> float:
    return float("inf") if number == -1 else number


# -- tmpfs and /dev/shm -------------------------------------------------------------------------
def parse_tmpfs(value: Any) -> dict[str, str]:
    """`tmpfs` (--tmpfs /path[:opts]): opts as docker's (`size=64m,mode=1777,uid=…,noexec…`).
    Returns docker's HostConfig.Tmpfs {path: "opts"} (opts normalised, size in bytes)."""
    result: dict[str, str] = {}
    for entry in _strings(value, "tmpfs (--tmpfs)"):
        path, _, text = entry.partition(":")
        if not path.startswith("/") or ".." in path.split("/") or os.path.normpath(path) == "/":
            raise InvalidArgument(f"invalid tmpfs (--tmpfs) {entry!r}: the path must be "
                                  "absolute, without '..', and not /")
        path = os.path.normpath(path)
        if path in result:
            raise InvalidArgument(f"tmpfs {path!r} is given twice")
        options = []
        for option in (o.strip() for o in text.split(",") if o.strip()):
            key, sep, setting = option.partition("=")
            if not sep and key in TMPFS_FLAGS:
                options.append(key)
                continue
            if not sep or key not in TMPFS_VALUES or not setting:
                raise InvalidArgument(
                    f"invalid tmpfs (--tmpfs) option {option!r} in {entry!r}: allowed "
                    f"{', '.join(TMPFS_FLAGS)} and size=, mode=, uid=, gid=, nr_inodes=")
            if key == "size":
                if setting.endswith("%") and setting[:-1].isdigit():
                    options.append(option)
                    continue
                options.append(f"size={parse_size(setting, f'tmpfs {path} size')}")
            elif key == "mode":
                if not re.fullmatch(r"[0-7]{3,4}", setting):
                    raise InvalidArgument(f"invalid tmpfs {path} mode {setting!r}: use an octal "
                                          "mode such as 1777 or 755")
                options.append(option)
            elif not setting.isdigit():
                raise InvalidArgument(f"invalid tmpfs {path} {key} {setting!r}: use a number")
            else:
                options.append(option)
        result[path] = ",".join(options)
    return result


def tmpfs_mount_options(text: str) -> list[str]:
    """OCI mount options of a tmpfs: docker's defaults (noexec, nosuid, nodev) unless the
    entry says otherwise (exec, suid, dev)."""
    given = [o for o in text.split(",") if o]
    opposites = {"noexec": "exec", "nosuid": "suid", "nodev": "dev"}
    defaults = [d for d in TMPFS_DEFAULTS if d not in given and opposites[d] not in given]
    return [*defaults, *given]


def parse_shm_size(value: int | str | None) -> int:
    """`shm_size` (--shm-size): bytes or a size such as 256m; 0 means docker's 64 MiB."""
    size = parse_size(value, "shm_size (--shm-size)")
    return size or DEFAULT_SHM_SIZE


# -- name resolution ----------------------------------------------------------------------------
def parse_extra_hosts(value: Any) -> list[str]:
    """`extra_hosts` (--add-host NAME:IP, or NAME=IP as compose allows): IP is an address or
    `host-gateway`; an IPv6 address may be in brackets. Returns `NAME:IP` entries."""
    result = []
    for entry in _strings(value, "extra_hosts (--add-host)"):
        separators = [i for i in (entry.find("="), entry.find(":")) if i > 0]
        if not separators:
            raise InvalidArgument(f"invalid extra_hosts (--add-host) {entry!r}: use NAME:IP "
                                  "(IP may be host-gateway)")
        cut = min(separators)
        name, address = entry[:cut].strip(), entry[cut + 1:].strip()
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        if not _HOSTNAME.match(name) or len(name) > 253:
            raise InvalidArgument(f"invalid extra_hosts (--add-host) {entry!r}: {name!r} is not "
                                  "a host name")
        if address != HOST_GATEWAY:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise InvalidArgument(f"invalid extra_hosts (--add-host) {entry!r}: {address!r} "
                                      "is not an IP address (nor host-gateway)") from None
        result.append(f"{name}:{address}")
    return result


def parse_dns(value: Any) -> list[str]:
    """`dns` (--dns): resolver IP addresses."""
    result = []
    for entry in _strings(value, "dns (--dns)"):
        try:
            result.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise InvalidArgument(f"invalid dns (--dns) {entry!r}: use a resolver's IP address "
                                  "such as 1.1.1.1") from None
    return result


def parse_dns_search(value: Any) -> list[str]:
    """`dns_search` (--dns-search): domain names (`.` alone: no search domain)."""
    result = []
    for entry in _strings(value, "dns_search (--dns-search)"):
        domain = entry.rstrip(".") if entry != "." else "."
        if domain != "." and (not _HOSTNAME.match(domain) or len(domain) > 253):
            raise InvalidArgument(f"invalid dns_search (--dns-search) {entry!r}: use a domain "
                                  "name such as example.com")
        result.append(domain)
    return result


def parse_dns_options(value: Any) -> list[str]:
    """`dns_opt` (--dns-option): resolv.conf options (ndots:N, timeout:N, attempts:N, rotate,
    edns0, single-request, single-request-reopen, no-tld-query, use-vc, trust-ad…)."""
    result = []
    for entry in _strings(value, "dns_opt (--dns-option)"):
        match = _DNS_OPTION.match(entry)
        name = match.group(1) if match else ""
        if not match or name not in DNS_OPTIONS or (
                (match.group(2) is None) == (name in DNS_OPTIONS_WITH_VALUE)):
            flags = ", ".join(o for o in DNS_OPTIONS if o not in DNS_OPTIONS_WITH_VALUE)
            raise InvalidArgument(f"invalid dns_opt (--dns-option) {entry!r}: allowed "
                                  f"ndots:N, timeout:N, attempts:N, {flags}")
        result.append(entry)
    return result


def resolv_conf(base: str, dns: list[str], search: list[str], options: list[str]) -> str:
    """`base` (the network's resolv.conf) with its nameserver, search and options lines
    replaced by those given (each only when given, as docker does)."""
    lines = base.splitlines()
    if dns:
        lines = [line for line in lines if not line.startswith("nameserver")]
        lines = [*(f"nameserver {server}" for server in dns), *lines]
    if search:
        lines = [line for line in lines if not line.startswith(("search", "domain"))]
        if search != ["."]:
            lines.append("search " + " ".join(d for d in search if d != "."))
    if options:
        lines = [line for line in lines if not line.startswith("options")]
        lines.append("options " + " ".join(options))
    return "\n".join(lines).strip() + "\n"


# -- namespaces ---------------------------------------------------------------------------------
def _container_ref(mode: str, field: str) -> str:
    name = mode.partition(":")[2].strip()
    if not _CONTAINER_NAME.match(name):
        raise InvalidArgument(f"invalid {field} {mode!r}: container: needs a container name "
                              "(container:NAME)")
    return name


def parse_pid_mode(value: str | None) -> str:
    """`pid` (--pid): "" (the container's own namespace) or "host"."""
    mode = (value or "").strip()
    if mode not in PID_MODES:
        raise InvalidArgument(f"invalid pid (--pid) {mode!r}: allowed \"\" (own namespace) or "
                              "host")
    return mode


def parse_ipc_mode(value: str | None) -> str:
    """`ipc` (--ipc): "", private, shareable, host or container:NAME."""
    mode = (value or "").strip()
    if mode.startswith("container:"):
        return f"container:{_container_ref(mode, 'ipc (--ipc)')}"
    if mode not in IPC_MODES:
        raise InvalidArgument(f"invalid ipc (--ipc) {mode!r}: allowed \"\", private, shareable, "
                              "host or container:NAME")
    return mode


def parse_network_mode(value: str | None) -> str:
    """`network_mode` (--network host|none|container:NAME): "" uses `networks`; `bridge` and
    `default` (docker's name for the default network) mean "" too."""
    mode = (value or "").strip()
    if mode.startswith("container:"):
        return f"container:{_container_ref(mode, 'network_mode (--network)')}"
    if mode in ("bridge", "default"):
        return ""
    if mode not in ("", "host", "none"):
        raise InvalidArgument(f"invalid network_mode {mode!r}: allowed \"\" (the networks "
                              "given), host, none or container:NAME")
    return mode


def joined_container(mode: str) -> str | None:
    """The container a `container:NAME` mode joins, else None."""
    return mode.partition(":")[2] if mode.startswith("container:") else None


# -- ports, logging, platform, groups -----------------------------------------------------------
def parse_expose(value: Any) -> dict[str, dict]:
    """`expose` (--expose PORT[-PORT][/tcp|udp|sctp]): recorded in Config.ExposedPorts only;
    nothing is published."""
    result: dict[str, dict] = {}
    for entry in _strings(value, "expose (--expose)"):
        match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?", entry.lower())
        if not match:
            raise InvalidArgument(f"invalid expose (--expose) {entry!r}: use PORT, PORT/udp or a "
                                  "range such as 8000-8010/tcp")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 1 <= first <= last <= 65535:
            raise InvalidArgument(f"invalid expose (--expose) {entry!r}: ports are 1 to 65535, "
                                  "a range goes upwards")
        for port in range(first, last + 1):
            result[f"{port}/{match.group(3) or 'tcp'}"] = {}
    return result


def parse_logging(value: Any) -> dict[str, Any]:
    """`logging` ({"driver", "options"}; --log-driver, --log-opt): driver json-file, local or
    none ("" = json-file); options max-size (a size, at least 1k) and max-file (a count, only
    with max-size). Returns docker's LogConfig {"Type", "Config"}."""
    if value is None or value == {}:
        return {"Type": "json-file", "Config": {}}
    if not isinstance(value, dict) or set(value) - {"driver", "options"}:
        raise InvalidArgument(f"invalid logging {value!r}: use {{\"driver\": json-file|local|"
                              "none, \"options\": {\"max-size\": \"10m\", \"max-file\": \"3\"}}")
    driver = value.get("driver") or "json-file"
    options = value.get("options") or {}
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f"invalid logging driver (--log-driver) {driver!r}: allowed "
                              f"{', '.join(LOG_DRIVERS)}")
    if not isinstance(options, dict):
        raise InvalidArgument(f"invalid logging options {options!r}: use an object such as "
                              "{\"max-size\": \"10m\"}")
    options = {str(k): str(v) for k, v in options.items()}
    if driver == "none" and options:
        raise InvalidArgument(f"logging driver none keeps no log, so it takes no options "
                              f"(got {', '.join(options)})")
    for key, setting in options.items():
        if key not in LOG_OPTIONS:
            raise InvalidArgument(f"invalid logging option (--log-opt) {key!r}: allowed "
                                  f"{', '.join(LOG_OPTIONS)}")
        if key == "max-size" and parse_size(setting, "logging max-size") < 1024:
            raise InvalidArgument(f"invalid logging max-size {setting!r}: use a size of at "
                                  "least 1k, such as 10m")
        if key == "max-file" and (not setting.isdigit() or int(setting) < 1):
            raise InvalidArgument(f"invalid logging max-file {setting!r}: use a count of 1 or "
                                  "more")
    if "max-file" in options and "max-size" not in options:
        raise InvalidArgument("logging max-file needs max-size: files rotate when they reach "
                              "max-size")
    return {"Type": driver, "Config": options}


def parse_log_opts(entries: list[str]) -> dict[str, str]:
    """`--log-opt KEY=VALUE` entries as the logging options dict."""
    result = {}
    for entry in entries:
        key, sep, setting = entry.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid --log-opt {entry!r}: use KEY=VALUE, e.g. "
                                  "max-size=10m")
        result[key] = setting
    return result


def log_size_max(log_config: dict[str, Any]) -> int | None:
    """The byte limit conmon keeps the log file under (--log-size-max), or None. conmon
    truncates the file when a write would pass it, so at most one file of max-size is kept
    whatever max-file says (less disk than docker would use, never more)."""
    options = dict(log_config.get("Config") or {})
    if log_config.get("Type") == "local":
        options = {**LOCAL_LOG_DEFAULTS, **options}
    size = parse_size(options.get("max-size"), "logging max-size")
    return size or None


def host_platform() -> str:
    """This host's platform as OCI names it (linux/amd64, linux/arm64/v8…)."""
    machine = platform_module.machine()
    arch, variant = _HOST_ARCHES.get(machine, (machine, ""))
    return "/".join(p for p in ("linux", arch, variant) if p)


def parse_platform(value: str | None) -> str:
    """`platform` (--platform OS/ARCH[/VARIANT]): must be this host's, since Berth does not
    emulate other CPUs. Returns the normalised platform ("" when unset)."""
    text = (value or "").strip().lower()
    if not text:
        return ""
    parts = text.split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform (--platform) {value!r}: use OS/ARCH[/VARIANT] "
                              "such as linux/amd64")
    os_name = parts[0]
    arch = _ARCH_ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else None
    variant = parts[2] if len(parts) > 2 else None
    host = host_platform()
    host_os, host_arch, *host_variant = host.split("/")
    if os_name != host_os or (arch is not None and arch != host_arch) or (
            variant is not None and variant != (host_variant[0] if host_variant else variant)):
        raise InvalidArgument(f"platform {value!r} cannot run on this host, which is {host}: "
                              "Berth does not emulate other architectures; use an image for "
                              f"{host} or place the container on a {text} host")
    return "/".join(p for p in (os_name, arch, variant) if p)


def parse_group_add(value: Any) -> list[str]:
    """`group_add` (--group-add): group names or numeric gids (resolved against the image)."""
    result = []
    for entry in _strings(value, "group_add (--group-add)"):
        if not entry or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", entry):
            raise InvalidArgument(f"invalid group_add (--group-add) {entry!r}: use a group name "
                                  "or a numeric gid")
        if entry.isdigit() and int(entry) > 0xFFFFFFFE:
            raise InvalidArgument(f"invalid group_add {entry!r}: gids are below 4294967295")
        result.append(entry)
    return result


def parse_cpus_reservation(value: float | str | None) -> int:
    """`cpus_reservation`: CPUs kept for placement only (no runtime effect); nano-CPUs."""
    if value is None or value == "" or value == 0:
        return 0
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid cpus_reservation {value!r}: use a decimal such as "
                              "0.5") from None
    if cpus < 0 or cpus != cpus:
        raise InvalidArgument(f"invalid cpus_reservation {value!r}: it cannot be negative")
    return int(cpus * 1e9)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{field} must be true or false, not {value!r}")
    return value


# -- all together -------------------------------------------------------------------------------
def host_options(options: RunOptions, memory: int) -> dict[str, Any]:
    """Every kernel-facing field of `options` as docker's HostConfig entries (plus
    `ExposedPorts` and Berth's `NanoCpusReservation`), with contradictory combinations refused.
    `memory` is the parsed memory limit (the reservation must stay below it)."""
    cap_add = parse_capabilities(options.cap_add, "cap_add (--cap-add)")
    cap_drop = parse_capabilities(options.cap_drop, "cap_drop (--cap-drop)")
    both = [c for c in cap_add if c in cap_drop and c != "ALL"]
    if both:
        raise InvalidArgument(f"capability {both[0]} is in both cap_add and cap_drop: keep it "
                              "in one of them")
    privileged = _bool(options.privileged, "privileged (--privileged)")
    if privileged and cap_drop:
        raise InvalidArgument("privileged gives every capability, so cap_drop has no effect: "
                              "drop privileged or the cap_drop entries")
    security_opt = parse_security_opt(options.security_opt)
    network_mode = parse_network_mode(options.network_mode)
    ipc_mode = parse_ipc_mode(options.ipc)
    pid_mode = parse_pid_mode(options.pid)
    sysctls = parse_sysctls(options.sysctls)
    shares_network = network_mode == "host" or network_mode.startswith("container:")
    for key in sysctls:
        if key.startswith(NETWORK_SYSCTL_PREFIX) and shares_network:
            raise InvalidArgument(f"sysctl {key} is not allowed with network_mode "
                                  f"{network_mode}: it would change the shared namespace's "
                                  "setting; set it on the container that owns the network")
        if is_ipc_sysctl(key) and (ipc_mode == "host" or ipc_mode.startswith("container:")):
            raise InvalidArgument(f"sysctl {key} is not allowed with ipc {ipc_mode}: it would "
                                  "change the shared IPC namespace's setting")
    shm_given = parse_size(options.shm_size, "shm_size (--shm-size)")
    if shm_given and (ipc_mode == "host" or ipc_mode.startswith("container:")):
        raise InvalidArgument(f"shm_size cannot be combined with ipc {ipc_mode}: /dev/shm is "
                              "then the shared one")
    memory_reservation = parse_size(options.memory_reservation,
                                    "memory_reservation (--memory-reservation)")
    if memory and memory_reservation > memory:
        raise InvalidArgument("memory_reservation must not be above the memory limit: the "
                              "reservation is a soft limit below it")
    extra_hosts = parse_extra_hosts(options.extra_hosts)
    if network_mode == "none" and any(h.endswith(":" + HOST_GATEWAY) for h in extra_hosts):
        raise InvalidArgument("extra_hosts host-gateway needs a network: with network_mode "
                              "none there is no gateway")
    dns = parse_dns(options.dns)
    dns_search = parse_dns_search(options.dns_search)
    dns_opt = parse_dns_options(options.dns_opt)
    exposed = parse_expose(options.expose)
    joined = joined_container(network_mode)
    if joined is not None:
        conflicts = [flag for flag, given in (
            ("networks", options.networks), ("ports (-p)", options.publish or
                                             options.publish_all),
            ("ip", options.ip), ("network_aliases", options.network_aliases),
            ("dns", dns), ("dns_search", dns_search), ("dns_opt", dns_opt),
            ("extra_hosts", extra_hosts), ("hostname", options.hostname),
            ("expose", exposed)) if given]
        if conflicts:
            raise InvalidArgument(
                f"network_mode {network_mode} shares the network of {joined}, so "
                f"{', '.join(conflicts)} cannot be set here: set them on {joined}")
    elif network_mode in ("host", "none") and options.networks and (
            list(dict.fromkeys(options.networks)) != [network_mode]):
        raise InvalidArgument(f"network_mode {network_mode} cannot be combined with networks "
                              f"{options.networks}: pick one")
    return {
        "CapAdd": cap_add or None, "CapDrop": cap_drop or None, "Privileged": privileged,
        "SecurityOpt": security_opt or None, "Devices": parse_devices(options.devices),
        "Sysctls": sysctls, "Ulimits": parse_ulimits(options.ulimits),
        "Tmpfs": parse_tmpfs(options.tmpfs), "ShmSize": shm_given or DEFAULT_SHM_SIZE,
        "ExtraHosts": extra_hosts or None, "Dns": dns, "DnsSearch": dns_search,
        "DnsOptions": dns_opt, "PidMode": pid_mode, "IpcMode": ipc_mode or "private",
        "NetworkMode": network_mode, "LogConfig": parse_logging(options.logging),
        "Platform": parse_platform(options.platform),
        "MemoryReservation": memory_reservation,
        "NanoCpusReservation": parse_cpus_reservation(options.cpus_reservation),
        "GroupAdd": parse_group_add(options.group_add) or None,
        "ExposedPorts": exposed,
    }
