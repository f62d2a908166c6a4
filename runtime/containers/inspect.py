"""`inspect`: the container as `docker inspect` prints it (the fields Berth has)."""

from __future__ import annotations

from typing import Any

from runtime.containers.record import Container


def inspect_container(container: Container) -> dict[str, Any]:
    """docker-inspect-shaped JSON: Id, Created, Path, Args, State, Image, Name, RestartCount,
    Config, HostConfig, Mounts, LogPath…"""
    entrypoint = list(container.config.get("Entrypoint") or [])
    cmd = list(container.config.get("Cmd") or [])
    argv = entrypoint + cmd
    state = {key: value for key, value in container.state.items() if key != "ConmonPid"}
    if container.healthcheck and "Health" not in state:
        state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    config = dict(container.config)
    config.update(AttachStdin=False, AttachStdout=False, AttachStderr=False, Tty=False,
                  OpenStdin=False)
    return {
        "Id": container.id,
        "Created": container.created,
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": state,
        "Image": container.image_id,
        "ResolvConfPath": str(container.directory / "resolv.conf"),
        "HostnamePath": str(container.directory / "hostname"),
        "HostsPath": str(container.directory / "hosts"),
        "LogPath": str(container.log_path),
        "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": host_config(container),
        "GraphDriver": {"Name": "overlay", "Data": {
            "MergedDir": str(container.rootfs),
            "UpperDir": str(container.directory / "upper"),
            "WorkDir": str(container.directory / "work"),
        }},
        "Mounts": [{k: v for k, v in m.items() if k not in ("Anonymous", "NoCopy")}
                   for m in container.mounts],
        "Config": config,
        "NetworkSettings": network_settings(container),
        "OCIRuntime": container.runtime,
    }


# What docker prints for a kernel-facing field left unset (and for records older than it).
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "CapAdd": None, "CapDrop": None, "Privileged": False, "SecurityOpt": None, "Devices": [],
    "Sysctls": {}, "Ulimits": [], "Tmpfs": {}, "ShmSize": 64 * 1024 * 1024, "ExtraHosts": None,
    "Dns": [], "DnsSearch": [], "DnsOptions": [], "PidMode": "", "IpcMode": "private",
    "LogConfig": {"Type": "json-file", "Config": {}}, "MemoryReservation": 0,
    "GroupAdd": None,
}
INTERNAL_KEYS = ("SeccompProfile",)  # kept for the runtime, not part of docker's output


def host_config(container: Container) -> dict[str, Any]:
    """docker's HostConfig: the record's, with docker's values for unset fields."""
    result = {**HOST_CONFIG_DEFAULTS, **container.host_config}
    for key in INTERNAL_KEYS:
        result.pop(key, None)
    return result


def network_settings(container: Container) -> dict[str, Any]:
    """docker's NetworkSettings: per-network endpoints, plus the top-level IPAddress, Gateway,
    IPPrefixLen and MacAddress of the container's primary network (its NetworkMode), which
    docker fills for its default network and many scripts read."""
    settings: dict[str, Any] = {"Networks": {}, "SandboxKey": "", "Ports": {},
                                **container.network_settings}
    primary = (settings["Networks"] or {}).get(container.host_config.get("NetworkMode") or "")
    primary = primary or {}
    for key, empty in (("IPAddress", ""), ("IPPrefixLen", 0), ("Gateway", ""),
                       ("MacAddress", "")):
        settings.setdefault(key, primary.get(key) or empty)
    return settings
