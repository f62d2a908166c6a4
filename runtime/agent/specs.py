"""The protocol's container spec (see `runtime.protocol`) <-> the runtime's `RunOptions`, and back.

The spec is what the panel wants on this host; `run_options` turns it into the runtime's input,
stamping the uid and generation labels the agent finds the container by later.
`spec_from_container` reads a runtime container back into the same shape (for comparison and for
reporting containers the panel did not create).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runtime.containers.options import HealthOptions, RunOptions
from runtime.containers.record import Container
from runtime.errors import InvalidArgument
from runtime.protocol import (
    GENERATION_LABEL,
    PORT_GROUP_LABEL,
    UID_LABEL,
    field_info,
    is_default,
    spec_fields,
)

DESIRED_STATES = ("running", "stopped")
# Spec fields whose RunOptions counterpart has another name or shape: converted in run_options.
_CONVERTED = {"name", "image", "command", "env", "volumes", "memory", "cpus", "restart", "init",
              "entrypoint", "labels", "healthcheck", "networks", "ports"}
_RUN_OPTION_NAMES = {f.name for f in dataclasses.fields(RunOptions)}


def passthrough_fields() -> tuple[str, ...]:
    """The spec fields given to RunOptions under their own name: every runtime-facing field
    of `ContainerSpec` that RunOptions has and run_options does not convert."""
    return tuple(info.name for info in spec_fields()
                 if info.runtime and info.name not in _CONVERTED
                 and info.name in _RUN_OPTION_NAMES)


def unsupported_fields(spec: dict[str, Any]) -> list[str]:
    """Runtime-facing spec fields set to something other than their default that this
    runtime's RunOptions does not have (an older agent): refused rather than ignored."""
    return sorted(key for key, value in spec.items()
                  if key not in _RUN_OPTION_NAMES and key not in _CONVERTED
                  and _is_runtime_field(key) and not is_default(key, value))


def _is_runtime_field(name: str) -> bool:
    try:
        return field_info(name).runtime
    except KeyError:
        return False


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check the fields the agent itself relies on; the runtime validates the rest when it
    creates the container. Raises InvalidArgument naming the field and what is allowed."""
    if not isinstance(spec, dict):
        raise InvalidArgument(f"spec must be a JSON object, not {type(spec).__name__}")
    uid = spec.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        raise InvalidArgument("spec.uid is required: a non-empty string identifying the container")
    if not isinstance(spec.get("image"), str) or not spec["image"]:
        raise InvalidArgument("spec.image is required: an image reference such as busybox:latest")
    generation = spec.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise InvalidArgument(f"spec.generation must be an integer >= 0, not {generation!r}")
    desired = spec.get("desired", "running")
    if desired not in DESIRED_STATES:
        raise InvalidArgument(f"spec.desired must be one of {', '.join(DESIRED_STATES)}, "
                              f"not {desired!r}")
    for key in ("command", "env", "ports", "volumes", "networks"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            raise InvalidArgument(f"spec.{key} must be a list of strings")
    labels = spec.get("labels")
    if labels is not None and not isinstance(labels, dict):
        raise InvalidArgument("spec.labels must be an object of string values")
    return spec


def generation_of(spec: dict[str, Any]) -> int:
    return int(spec.get("generation", 0) or 0)


def desired_state(spec: dict[str, Any]) -> str:
    return str(spec.get("desired") or "running")


def run_options(spec: dict[str, Any]) -> RunOptions:
    """The RunOptions that create the container `spec` describes (uid/generation labelled)."""
    validate_spec(spec)
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    labels[UID_LABEL] = spec["uid"]
    labels[GENERATION_LABEL] = str(generation_of(spec))
    if spec.get("port_group"):
        labels[PORT_GROUP_LABEL] = str(spec["port_group"])
    entrypoint = spec.get("entrypoint")
    unsupported = unsupported_fields(spec)
    if unsupported:
        raise InvalidArgument(f"spec.{unsupported[0]} is not supported by this host's Berth "
                              f"runtime ({', '.join(unsupported)} set): upgrade the agent or "
                              "leave the field at its default")
    extra = {key: spec[key] for key in passthrough_fields() if spec.get(key) is not None}
    return RunOptions(
        image=spec["image"],
        command=list(spec.get("command") or []),
        name=spec.get("name") or None,
        env=list(spec.get("env") or []),
        volumes=list(spec.get("volumes") or []),
        memory=spec.get("memory") or None,
        cpus=spec.get("cpus") or None,
        restart=spec.get("restart") or "no",
        init=bool(spec.get("init")),
        entrypoint=list(entrypoint) if isinstance(entrypoint, list) else entrypoint,  # type: ignore[arg-type]
        labels=labels,
        health=health_options(spec.get("healthcheck")),
        networks=list(spec.get("networks") or []),
        publish=list(spec.get("ports") or []),
        **extra,
    )


def health_options(check: dict[str, Any] | None) -> HealthOptions | None:
    """The spec's healthcheck ({"test", "interval", "timeout", "start_period",
    "start_interval" in ns, "retries"}) as the runtime's HealthOptions."""
    if not check:
        return None
    if not isinstance(check, dict) or not isinstance(check.get("test"), list):
        raise InvalidArgument('spec.healthcheck must be null or {"test": [...], "interval": ns, '
                              '"timeout": ns, "start_period": ns, "retries": n}')
    return HealthOptions(test=list(check["test"]), interval=int(check.get("interval") or 0),
                         timeout=int(check.get("timeout") or 0),
                         start_period=int(check.get("start_period") or 0),
                         start_interval=int(check.get("start_interval") or 0),
                         retries=int(check.get("retries") or 0))


def spec_from_container(container: Container) -> dict[str, Any]:
    """The spec that would (re)create `container`: the inverse of `run_options`."""
    config, host_config = container.config, container.host_config
    labels = container.labels
    policy = host_config.get("RestartPolicy") or {"Name": "no"}
    restart = policy.get("Name") or "no"
    if restart == "on-failure" and policy.get("MaximumRetryCount"):
        restart = f"on-failure:{policy['MaximumRetryCount']}"
    check = config.get("Healthcheck") or None
    ports = []
    for key, bindings in (host_config.get("PortBindings") or {}).items():
        port, _, proto = key.partition("/")
        suffix = "/udp" if proto == "udp" else ""
        for binding in bindings or [{}]:
            prefix = ":".join(p for p in (binding.get("HostIp"), binding.get("HostPort")) if p)
            ports.append(f"{prefix}:{port}{suffix}" if prefix else f"{port}{suffix}")
    mode = host_config.get("NetworkMode") or ""
    networks = list((container.network_settings.get("Networks") or {}).keys())
    if not networks and mode in ("none", "host"):
        networks = [mode]
    return {**_kernel_fields(container),
        "uid": labels.get(UID_LABEL, ""),
        "name": container.name,
        "generation": int(labels.get(GENERATION_LABEL, "0") or 0),
        "desired": "running" if container.running else "stopped",
        "image": container.image_ref or container.image_id,
        "command": list(config.get("Cmd") or []),
        "entrypoint": config.get("Entrypoint") or None,
        "env": list(config.get("Env") or []),
        "ports": ports,
        "volumes": list(host_config.get("Binds") or []),
        "networks": networks,
        "memory": int(host_config.get("Memory") or 0),
        "cpus": (host_config.get("NanoCpus") or 0) / 1e9,
        "restart": restart,
        "healthcheck": None if not check else {
            "test": list(check.get("Test") or []), "interval": check.get("Interval", 0),
            "timeout": check.get("Timeout", 0), "start_period": check.get("StartPeriod", 0),
            "start_interval": check.get("StartInterval", 0), "retries": check.get("Retries", 0)},
        "labels": labels,
        "init": bool(host_config.get("Init")),
    }


def _kernel_fields(container: Container) -> dict[str, Any]:
    """The kernel-facing spec fields of `container` that differ from their defaults (so a
    container made without them reads back exactly as before)."""
    from runtime.containers.kernel_options import DEFAULT_SHM_SIZE

    host_config = container.host_config
    log_config = host_config.get("LogConfig") or {}
    logging = ({"driver": log_config.get("Type"), "options": dict(log_config.get("Config") or {})}
               if log_config.get("Type") not in (None, "", "json-file")
               or log_config.get("Config") else {})
    mode = str(host_config.get("NetworkMode") or "")
    fields: dict[str, Any] = {
        "cap_add": list(host_config.get("CapAdd") or []),
        "cap_drop": list(host_config.get("CapDrop") or []),
        "privileged": bool(host_config.get("Privileged")),
        "security_opt": list(host_config.get("SecurityOpt") or []),
        "devices": [f"{d['PathOnHost']}:{d['PathInContainer']}:{d['CgroupPermissions']}"
                    for d in host_config.get("Devices") or []],
        "sysctls": dict(host_config.get("Sysctls") or {}),
        "ulimits": {u["Name"]: {"soft": u["Soft"], "hard": u["Hard"]}
                    for u in host_config.get("Ulimits") or []},
        "tmpfs": [f"{path}:{opts}" if opts else path
                  for path, opts in (host_config.get("Tmpfs") or {}).items()],
        "shm_size": (0 if int(host_config.get("ShmSize") or DEFAULT_SHM_SIZE) == DEFAULT_SHM_SIZE
                     else int(host_config["ShmSize"])),
        "extra_hosts": list(host_config.get("ExtraHosts") or []),
        "dns": list(host_config.get("Dns") or []),
        "dns_search": list(host_config.get("DnsSearch") or []),
        "dns_opt": list(host_config.get("DnsOptions") or []),
        "pid": str(host_config.get("PidMode") or ""),
        "ipc": "" if host_config.get("IpcMode") in (None, "", "private")
        else str(host_config["IpcMode"]),
        "network_mode": mode if mode.startswith("container:") else "",
        "logging": logging,
        "platform": str(host_config.get("Platform") or ""),
        "memory_reservation": int(host_config.get("MemoryReservation") or 0),
        "cpus_reservation": (host_config.get("NanoCpusReservation") or 0) / 1e9,
        "group_add": list(host_config.get("GroupAdd") or []),
    }
    # `expose` is not read back: Config.ExposedPorts mixes it with the image's own ports
    return {key: value for key, value in fields.items() if value}
