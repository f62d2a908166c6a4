"""The default seccomp filter: the system's containers profile, turned into an OCI `linux.seccomp`.

Docker and Podman both confine every container with a default seccomp profile (syscalls such as
`kexec_load`, `add_key`, `bpf` or `personality` with unusual flags are refused). Berth does not
ship a profile of its own: Debian's `golang-github-containers-common` package (a dependency of
podman, named in scripts/setup.sh) installs Podman's maintained default at
/usr/share/containers/seccomp.json, and Berth loads it from there at run time.

That file is in the Docker/containers profile format, not the OCI one: rules carry `includes` /
`excludes` conditions (capabilities, architectures, minimum kernel) that must be resolved for the
container at hand, and architectures come as an `archMap`. `oci_profile` does that resolution:

1. architectures: the entry of `archMap` for this machine (the native one plus its
   sub-architectures), so 32-bit syscalls of the same CPU are filtered too; a sub-architecture
   whose ABI this kernel was built without (x32 on most kernels, per its config) is left out:
   nothing can call it anyway, and each architecture costs the runtime ~15 ms to compile into
   the filter at every container start;
2. each rule is kept only if all of its `includes` hold (every listed capability is in the
   container's bounding set, this machine's architecture is listed, the kernel is at least
   `minKernel`) and none of its `excludes` does;
3. kept rules become OCI rules (names, action, args, errnoRet); the default action and errno
   are copied.

`BERTH_SECCOMP_PROFILE` names another profile file, or `unconfined` to run without a filter.
"""

from __future__ import annotations

import json
import os
import platform
from functools import lru_cache
from typing import Any

from runtime.errors import InvalidArgument

PROFILE_ENV = "BERTH_SECCOMP_PROFILE"
SYSTEM_PROFILES = ("/usr/share/containers/seccomp.json", "/etc/containers/seccomp.json")
UNCONFINED = "unconfined"

# platform.machine() → (the profile's SCMP architecture, Go's name used in `arches` conditions)
_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"),
    "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "armv7l": ("SCMP_ARCH_ARM", "arm"),
    "i686": ("SCMP_ARCH_X86", "386"),
    "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"),
}


def profile_path() -> str | None:
    """The profile file new containers get, or None (no filter: `unconfined`, or the system
    has no containers profile installed)."""
    wanted = os.environ.get(PROFILE_ENV, "").strip()
    if wanted == UNCONFINED:
        return None
    if wanted:
        if not os.path.isfile(wanted):
            raise InvalidArgument(f"{PROFILE_ENV}={wanted!r} is not a file; give a seccomp "
                                  f"profile's path or {UNCONFINED!r}")
        return wanted
    return next((p for p in SYSTEM_PROFILES if os.path.isfile(p)), None)


def default_filter(capabilities: list[str]) -> dict[str, Any] | None:
    """The OCI `linux.seccomp` for a container with this bounding capability set, or None."""
    path = profile_path()
    if path is None:
        return None
    stat = os.stat(path)
    return _cached(path, stat.st_mtime_ns, stat.st_size, tuple(sorted(capabilities)))


def profile_filter(profile: dict[str, Any], capabilities: list[str]) -> dict[str, Any]:
    """The OCI `linux.seccomp` of a given Docker-format profile (`--security-opt
    seccomp=FILE`, read at create time) for this bounding capability set."""
    return oci_profile(profile, set(capabilities), platform.machine(), _kernel_version(),
                       missing_abis())


@lru_cache(maxsize=8)
def _cached(path: str, _mtime: int, _size: int, capabilities: tuple[str, ...]) -> dict[str, Any]:
    try:
        with open(path) as f:
            profile = json.load(f)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read the seccomp profile {path}: {exc}") from None
    return oci_profile(profile, set(capabilities), platform.machine(), _kernel_version(),
                       missing_abis())


# A sub-architecture and the kernel options that build its system call ABI in (any one will do).
_ABI_OPTIONS = {
    "SCMP_ARCH_X32": ("CONFIG_X86_X32_ABI", "CONFIG_X86_X32"),
    "SCMP_ARCH_X86": ("CONFIG_IA32_EMULATION",),
}


@lru_cache(maxsize=1)
def missing_abis() -> frozenset[str]:
    """Sub-architectures this kernel was built without, from its config (/proc/config.gz or
    /boot/config-RELEASE); none when the config cannot be read (keep them all)."""
    text = _kernel_config()
    if text is None:
        return frozenset()
    enabled = {line.split("=", 1)[0] for line in text.splitlines()
               if line.endswith(("=y", "=m"))}
    return frozenset(arch for arch, options in _ABI_OPTIONS.items()
                     if not enabled.intersection(options))


def _kernel_config() -> str | None:
    import gzip

    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return f.read()
    except OSError:
        pass
    try:
        with open(f"/boot/config-{os.uname().release}") as f:
            return f.read()
    except OSError:
        return None


def oci_profile(profile: dict[str, Any], capabilities: set[str], machine: str,
                kernel: tuple[int, int], missing: frozenset[str] = frozenset(),
                ) -> dict[str, Any]:
    """Resolve a Docker/containers-format profile for one container (see the module doc);
    `missing` names sub-architectures the kernel cannot run."""
    native, go_arch = _ARCHES.get(machine, ("", machine))
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            architectures = [native, *(a for a in entry.get("subArchitectures") or []
                                       if a not in missing)]
    result: dict[str, Any] = {"defaultAction": profile["defaultAction"],
                              "architectures": architectures, "syscalls": []}
    if profile.get("defaultErrnoRet") is not None:
        result["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, capabilities, go_arch, kernel):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        oci_rule: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            oci_rule["args"] = [{k: v for k, v in arg.items()
                                 if k in ("index", "value", "valueTwo", "op")}
                                for arg in rule["args"]]
        if rule.get("errnoRet") is not None:
            oci_rule["errnoRet"] = int(rule["errnoRet"])
        result["syscalls"].append(oci_rule)
    return result


def _applies(rule: dict[str, Any], capabilities: set[str], arch: str,
             kernel: tuple[int, int]) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if includes.get("caps") and not set(includes["caps"]) <= capabilities:
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if includes.get("minKernel") and kernel < _parse_kernel(includes["minKernel"]):
        return False
    if excludes.get("caps") and set(excludes["caps"]) & capabilities:
        return False
    if excludes.get("arches") and arch in excludes["arches"]:
        return False
    return not (excludes.get("minKernel") and kernel >= _parse_kernel(excludes["minKernel"]))


def _parse_kernel(text: str) -> tuple[int, int]:
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0)
             for part in str(text).split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def _kernel_version() -> tuple[int, int]:
    return _parse_kernel(os.uname().release)
