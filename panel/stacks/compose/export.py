"""StackSpec -> compose text that `parse_compose` reads back to the same StackSpec.

The file names volumes and networks by their compose keys (a real name is written as `name:`
only when it differs from what the key gives), leaves out what is the default, writes
durations and sizes the way people write them (1m30s, 256m), and doubles every `$` so that
values are not interpolated a second time."""

from __future__ import annotations

import base64
import re
from typing import Any

import yaml

from panel.stacks.compose.loader import _Core12Resolver
from panel.stacks.compose.spec import UPDATE_DEFAULTS, NetworkSpec, ServiceSpec, StackSpec
from runtime.protocol import LEGACY_HASH_FIELDS, field_info, is_default, spec_fields

# spec fields written under their own compose key when set (the legacy ones are written below,
# each in the form compose files use; `name` is the engine's per replica)
_DIRECT_KEYS = tuple((info.name, info.compose) for info in spec_fields()
                     if info.compose and info.name not in LEGACY_HASH_FIELDS
                     and info.name != "name")
_SIZES = ("shm_size",)
_OBJECT_NAME = re.compile(r"[^a-zA-Z0-9._-]")

_DURATION_UNITS = (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000),
                   ("ms", 1_000_000), ("us", 1_000), ("ns", 1))
_SIZE_UNITS = (("g", 1024**3), ("m", 1024**2), ("k", 1024))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 *or* 1.2 would read as something else."""


for _first, _resolvers in _Core12Resolver.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        _Dumper.add_implicit_resolver(_tag, _regexp, [_first])


def format_duration(nanoseconds: int) -> str:
    """90_000_000_000 -> "1m30s"; 0 -> "0s"."""
    if nanoseconds == 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, nanoseconds = divmod(nanoseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(size: int) -> str:
    """268435456 -> "256m"; a size that is no whole number of k stays in bytes."""
    for unit, factor in _SIZE_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _escape(value: Any) -> Any:
    """Double `$` in every value (keys are never interpolated)."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escape(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape(item) for key, item in value.items()}
    return value


def _plain_default(stack: StackSpec, network: NetworkSpec) -> bool:
    return network == NetworkSpec(name=f"{stack.name}_default")


def _healthcheck(check: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"test": list(check["test"])}
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if check.get(key):
            out[key] = format_duration(check[key])
    if check.get("retries"):
        out["retries"] = check["retries"]
    return out


def _deploy(service: ServiceSpec) -> dict[str, Any]:
    container = service.container
    deploy: dict[str, Any] = {}
    if service.replicas != 1:
        deploy["replicas"] = service.replicas
    limits: dict[str, Any] = {}
    if container["cpus"]:
        limits["cpus"] = container["cpus"]
    if container["memory"]:
        limits["memory"] = format_size(container["memory"])
    if container["pids_limit"] is not None:
        limits["pids"] = container["pids_limit"]
    reservations: dict[str, Any] = {}
    if container.get("cpus_reservation"):
        reservations["cpus"] = container["cpus_reservation"]
    if container.get("memory_reservation"):
        reservations["memory"] = format_size(container["memory_reservation"])
    resources = {key: value for key, value in (("limits", limits),
                                                ("reservations", reservations)) if value}
    if resources:
        deploy["resources"] = resources
    if container["constraints"]:
        deploy["placement"] = {"constraints": list(container["constraints"])}
    if service.update_config != UPDATE_DEFAULTS:
        update = dict(service.update_config)
        for key in ("delay", "monitor"):
            update[key] = format_duration(update[key])
        deploy["update_config"] = update
    return deploy


def _files(service: ServiceSpec, out: dict[str, Any], objects: dict[str, dict]) -> None:
    """The service's secret and config files as `secrets:`/`configs:` uses, their top-level
    definitions added to `objects` (a secret file reads back from the stack's files)."""
    for index, entry in enumerate(service.container.get("files") or []):
        use: dict[str, Any] = {"target": entry["target"], "mode": entry["mode"]}
        use |= {key: str(entry[key]) for key in ("uid", "gid") if key in entry}
        if entry.get("secret"):
            key = entry["secret"]
            name = _OBJECT_NAME.sub("_", key.removeprefix("file:"))
            objects["secrets"][name] = {"file": "./" + key.removeprefix("file:")} \
                if key.startswith("file:") else {"environment": key}
            out.setdefault("secrets", []).append({"source": name, **use})
        else:
            name = f"{service.name}_{index}"
            objects["configs"][name] = {
                "content": base64.b64decode(entry["content"]).decode(errors="replace")}
            out.setdefault("configs", []).append({"source": name, **use})


def _service(stack: StackSpec, service: ServiceSpec, volume_keys: dict[str, str],
             network_keys: dict[str, str], default_network: str | None,
             objects: dict[str, dict]) -> dict[str, Any]:
    container = service.container
    out: dict[str, Any] = {"image": container["image"]}
    if not container["pull"]:
        out["pull_policy"] = "never"
    if container["entrypoint"] is not None:
        out["entrypoint"] = list(container["entrypoint"])
    if container["command"]:
        out["command"] = list(container["command"])
    if container["env"]:
        out["environment"] = dict(container["env"])
    if container["ports"]:
        out["ports"] = list(container["ports"])
    if container["volumes"]:
        mounts = []
        for mount in container["volumes"]:
            source, _, rest = mount.partition(":")
            if rest and not source.startswith("/"):
                mount = f"{volume_keys.get(source, source)}:{rest}"
            mounts.append(mount)
        out["volumes"] = mounts
    if container.get("stack_dir"):  # relative binds: the stack's directory
        out.setdefault("volumes", []).extend(
            f"./{m}" for m in container["stack_dir"].get("mounts") or [])
    _files(service, out, objects)
    networks = container["networks"]
    if container.get("network_mode"):  # it replaces networks: (they are [] then)
        out["network_mode"] = _network_mode(stack, container["network_mode"])
    elif networks != ([default_network] if default_network else None) or service.aliases:
        keys = [network_keys.get(name, name) for name in networks]
        if service.aliases:
            out["networks"] = {
                key: {"aliases": list(service.aliases[name])} if name in service.aliases
                else None for key, name in zip(keys, networks, strict=True)}
        else:
            out["networks"] = keys
    if service.depends_on:
        out["depends_on"] = {name: {"condition": condition}
                             for name, condition in service.depends_on.items()}
    if container["healthcheck"] is not None:
        out["healthcheck"] = _healthcheck(container["healthcheck"])
    if container["restart"] != "no":
        out["restart"] = container["restart"]
    if container["init"]:
        out["init"] = True
    for key in ("user", "workdir", "hostname", "stop_signal"):
        if container[key] is not None:
            out[field_info(key).compose] = container[key]
    if container["read_only"]:
        out["read_only"] = True
    if container["stop_timeout"] is not None:
        out["stop_grace_period"] = format_duration(container["stop_timeout"] * 1_000_000_000)
    if container["labels"]:
        out["labels"] = dict(container["labels"])
    if container.get("name"):
        out["container_name"] = container["name"]
    for key, compose_key in _DIRECT_KEYS:
        value = container.get(key)
        if key not in ("network_mode", "files", "stack_dir") and not is_default(key, value):
            out[compose_key] = format_size(int(value or 0)) if key in _SIZES else value
    deploy = _deploy(service)
    if deploy:
        out["deploy"] = deploy
    return out


def _network_mode(stack: StackSpec, mode: str) -> str:
    """`container:NAME` back to `service:S` when NAME is the container of a service of this
    stack (what the compose front end made of it)."""
    if mode.startswith("container:"):
        name = mode.removeprefix("container:")
        for service_name, other in stack.services.items():
            if name == (other.container.get("name") or f"{stack.name}-{service_name}-1"):
                return f"service:{service_name}"
    return mode


def _resource(stack: StackSpec, key: str, spec: Any, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    default_name = key if spec.external else f"{stack.name}_{key}"
    if spec.name != default_name:
        out["name"] = spec.name
    if spec.external:
        out["external"] = True
    out.update(extra)
    if spec.labels:
        out["labels"] = dict(spec.labels)
    return out


def export_compose(stack: StackSpec) -> str:
    """The compose file of `stack` (see the module docstring)."""
    volume_keys = {spec.name: key for key, spec in reversed(stack.volumes.items())}
    network_keys = {spec.name: key for key, spec in reversed(stack.networks.items())}
    default = stack.networks.get("default")
    default_name = default.name if default is not None else None
    implicit_default = default is not None and _plain_default(stack, default) and any(
        default.name in s.container["networks"] for s in stack.services.values())
    objects: dict[str, dict] = {"secrets": {}, "configs": {}}
    document: dict[str, Any] = {"name": stack.name, "services": {
        name: _service(stack, service, volume_keys, network_keys, default_name, objects)
        for name, service in stack.services.items()}}
    if stack.volumes:
        document["volumes"] = {key: _resource(stack, key, spec, {})
                               for key, spec in stack.volumes.items()}
    networks = {}
    for key, network in stack.networks.items():
        if key == "default" and implicit_default:
            continue
        extra: dict[str, Any] = {"internal": True} if network.internal else {}
        if network.subnet:
            config = {"subnet": network.subnet}
            if network.gateway:
                config["gateway"] = network.gateway
            extra["ipam"] = {"config": [config]}
        networks[key] = _resource(stack, key, network, extra)
    if networks:
        document["networks"] = networks
    document |= {kind: dict(sorted(found.items())) for kind, found in objects.items() if found}
    return yaml.dump(_escape(document), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True, width=100)
