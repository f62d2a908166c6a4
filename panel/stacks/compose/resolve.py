"""Compose text -> `StackSpec`: the top level (name, volumes, networks, services) and the checks
that span services (dependencies and their cycles, published host ports, deploy order)."""

from __future__ import annotations

import heapq
import ipaddress
import re
from collections.abc import Collection, Mapping
from typing import Any

from panel.stacks.compose.errors import ComposeError, Issue
from panel.stacks.compose.files import parse_objects
from panel.stacks.compose.interpolation import interpolate
from panel.stacks.compose.loader import Node, load
from panel.stacks.compose.relations import active_profiles, apply_extends, drop_inactive, settle
from panel.stacks.compose.service import ParsedService, StackRefs, parse_service
from panel.stacks.compose.spec import SERVICE_HEALTHY, NetworkSpec, StackSpec, VolumeSpec
from panel.stacks.compose.values import (
    Context,
    boolean,
    check_keys,
    describe,
    join,
    key_values,
    mapping,
    string,
)
from panel.workloads.spec import RESERVED_LABEL_PREFIX
from runtime.errors import InvalidArgument
from runtime.network.store import validate_name as validate_network_name
from runtime.volumes import validate_volume_name

TOP_KEYS = ("version", "name", "services", "volumes", "networks", "secrets", "configs")
TOP_REFUSED = {
    "include": "Berth takes one compose file; paste the included services into it",
    "models": "AI models are not supported",
}
STACK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")
RESOURCE_KEY = re.compile(r"[a-zA-Z0-9._-]+")
VOLUME_KEYS = ("name", "external", "labels", "driver")
VOLUME_REFUSED = {"driver_opts": "Berth volumes are local directories on each host; remove "
                                 "driver_opts"}
NETWORK_KEYS = ("name", "external", "internal", "labels", "driver", "ipam")
NETWORK_REFUSED = {
    "driver_opts": "Berth networks are plain bridges; remove driver_opts",
    "attachable": "every Berth network can be joined by containers; remove attachable",
    "enable_ipv6": "IPv6 is not supported; remove enable_ipv6",
    "enable_ipv4": "networks always have IPv4; remove enable_ipv4",
}


def _stack_name(ctx: Context, fields: dict[str, Node], root: Node, given: str | None) -> str:
    name = given
    mark = (1, 1)
    if name is None and "name" in fields:
        mark = root.key_mark("name")
        name = string(ctx, fields["name"], "name", empty=False)
        if name is None:
            return "invalid"
    if name is None:
        ctx.error("name", (1, 1), "the stack has no name: give one (or name: at the top)")
        return "invalid"
    if not STACK_NAME.fullmatch(name):
        ctx.error("name", mark, f"{name!r} is not a valid stack name: use lower-case letters, "
                                "digits, '_' and '-', starting with a letter or digit")
        return "invalid"
    return name


def _labels(ctx: Context, node: Node, path: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for entry in key_values(ctx, node, path, "KEY") or []:
        if entry.key.startswith(RESERVED_LABEL_PREFIX):
            ctx.error(entry.path, entry.mark, f"{entry.key!r}: labels starting with "
                                              f"{RESERVED_LABEL_PREFIX!r} are reserved for Berth")
            continue
        labels[entry.key] = entry.value or ""
    return dict(sorted(labels.items()))


def _declaration(ctx: Context, key: str, node: Node, path: str, keys: tuple[str, ...],
                 refused: Mapping[str, str], driver: str, stack: str,
                 ) -> tuple[dict[str, Node], str, bool, dict[str, str]] | None:
    """What volumes and networks declare alike: the fields, real name, external and labels."""
    fields = mapping(ctx, node, path, "{external: true}", null_is_empty=True)
    if fields is None:
        return None
    check_keys(ctx, node, path, keys, refused)
    external = False
    if "external" in fields:
        item = fields["external"]
        if item.is_map:
            ctx.error(join(path, "external"), item.mark, "write external: true and name: NAME "
                                                         "(external: {name: …} is obsolete)")
        else:
            external = bool(boolean(ctx, item, join(path, "external")))
    name = f"{stack}_{key}" if not external else key
    if "name" in fields:
        name = string(ctx, fields["name"], join(path, "name"), empty=False) or name
    if "driver" in fields and fields["driver"].value != driver:
        ctx.error(join(path, "driver"), fields["driver"].mark,
                  f"only the {driver} driver is supported, not {describe(fields['driver'].value)}")
    labels = _labels(ctx, fields["labels"], join(path, "labels")) if "labels" in fields else {}
    if external:
        for other in ("driver", "labels", "internal", "ipam"):
            if other in fields:
                ctx.error(join(path, other), node.key_mark(other),
                          f"an external {path.split('.')[0][:-1]} is managed outside the stack; "
                          f"remove {other} (or external)")
    return fields, name, external, labels


def _volumes(ctx: Context, node: Node, stack: str) -> dict[str, VolumeSpec]:
    fields = mapping(ctx, node, "volumes", "{data: {}}", null_is_empty=True) or {}
    volumes: dict[str, VolumeSpec] = {}
    for key, definition in fields.items():
        if key.startswith("x-"):
            continue
        path = join("volumes", key)
        if not RESOURCE_KEY.fullmatch(key):
            ctx.error(path, node.key_mark(key), "a volume name may use letters, digits, '.', "
                                                "'_' and '-'")
            continue
        declared = _declaration(ctx, key, definition, path, VOLUME_KEYS, VOLUME_REFUSED,
                                "local", stack)
        if declared is None:
            continue
        _, name, external, labels = declared
        try:
            validate_volume_name(name)
        except InvalidArgument as exc:
            ctx.error(path, node.key_mark(key), str(exc))
        volumes[key] = VolumeSpec(name=name, external=external, labels=labels)
    return volumes


def _ipam(ctx: Context, node: Node, path: str, network: NetworkSpec) -> None:
    fields = mapping(ctx, node, path, "{config: [{subnet: 10.9.0.0/24}]}")
    if fields is None:
        return
    check_keys(ctx, node, path, ("driver", "config"),
               {"options": "IPAM options are not supported; remove options"})
    if "driver" in fields and fields["driver"].value != "default":
        ctx.error(join(path, "driver"), fields["driver"].mark, "only the default IPAM driver "
                                                               "is supported")
    if "config" not in fields:
        return
    configs = fields["config"]
    if not configs.is_seq or len(configs.value) > 1:
        ctx.error(join(path, "config"), configs.mark, "must be a list of one {subnet, gateway} "
                                                      "(one IPv4 subnet per network)")
        return
    if not configs.value:
        return
    item, item_path = configs.value[0], join(path, "config[0]")
    entry = mapping(ctx, item, item_path, "{subnet: 10.9.0.0/24, gateway: 10.9.0.1}")
    if entry is None:
        return
    check_keys(ctx, item, item_path, ("subnet", "gateway"), {
        "ip_range": "Berth allocates from the whole subnet; remove ip_range",
        "aux_addresses": "not supported; remove aux_addresses"})
    subnet = None
    if "subnet" in entry:
        text = string(ctx, entry["subnet"], join(item_path, "subnet")) or ""
        try:
            subnet = ipaddress.IPv4Network(text)
            network.subnet = str(subnet)
        except ValueError as exc:
            ctx.error(join(item_path, "subnet"), entry["subnet"].mark,
                      f"{text!r} is not an IPv4 subnet such as 10.9.0.0/24 ({exc})")
    if "gateway" in entry:
        text = string(ctx, entry["gateway"], join(item_path, "gateway")) or ""
        try:
            gateway = ipaddress.IPv4Address(text)
        except ValueError:
            ctx.error(join(item_path, "gateway"), entry["gateway"].mark,
                      f"{text!r} is not an IPv4 address")
            return
        if subnet is None or gateway not in subnet:
            ctx.error(join(item_path, "gateway"), entry["gateway"].mark,
                      "the gateway must be an address inside subnet:")
            return
        network.gateway = str(gateway)


def _networks(ctx: Context, node: Node, stack: str) -> dict[str, NetworkSpec]:
    fields = mapping(ctx, node, "networks", "{backend: {internal: true}}",
                     null_is_empty=True) or {}
    networks: dict[str, NetworkSpec] = {}
    for key, definition in fields.items():
        if key.startswith("x-"):
            continue
        path = join("networks", key)
        if not RESOURCE_KEY.fullmatch(key):
            ctx.error(path, node.key_mark(key), "a network name may use letters, digits, '.', "
                                                "'_' and '-'")
            continue
        declared = _declaration(ctx, key, definition, path, NETWORK_KEYS, NETWORK_REFUSED,
                                "bridge", stack)
        if declared is None:
            continue
        options, name, external, labels = declared
        network = NetworkSpec(name=name, external=external, labels=labels)
        if "internal" in options:
            network.internal = bool(boolean(ctx, options["internal"], join(path, "internal")))
        if "ipam" in options and not external:
            _ipam(ctx, options["ipam"], join(path, "ipam"), network)
        try:
            validate_network_name(name)
        except InvalidArgument as exc:
            ctx.error(path, node.key_mark(key), str(exc))
        networks[key] = network
    return networks


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Each dependency cycle once, as [a, b, …, a], starting at its smallest service name.

    1. Tarjan's algorithm finds the strongly connected components;
    2. a component of two or more services, or one service depending on itself, holds a cycle;
    3. a walk inside the component from its smallest member back to it names that cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        if len(component) == 1 and start not in graph[start]:
            continue
        path, seen = [start], {start}
        while True:
            following = sorted(t for t in graph[path[-1]] if t in members)
            if start in following:
                cycles.append([*path, start])
                break
            step = next(t for t in following if t not in seen)
            path.append(step)
            seen.add(step)
    return sorted(cycles)


def _deploy_order(graph: Mapping[str, list[str]]) -> list[str]:
    """Services after their dependencies, ties by name (Kahn's algorithm with a heap)."""
    waiting = {name: len(set(deps)) for name, deps in graph.items()}
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in set(deps):
            dependents[dep].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    return order


def _check_dependencies(ctx: Context, parsed: Mapping[str, ParsedService]) -> list[str]:
    graph: dict[str, list[str]] = {name: [] for name in parsed}
    for name, service in parsed.items():
        for target, dependency in service.dependencies.items():
            if target not in parsed:
                known = ", ".join(sorted(parsed))
                ctx.error(dependency.path, dependency.mark, f"unknown service {target!r}: this "
                                                            f"stack's services are {known}")
                continue
            if dependency.condition == SERVICE_HEALTHY and not parsed[target].has_healthcheck:
                ctx.error(dependency.path, dependency.mark,
                          f"condition service_healthy needs a health check on services.{target}:"
                          " add healthcheck.test there (or use service_started)")
            service.spec.depends_on[target] = dependency.condition
            graph[name].append(target)
        service.spec.depends_on = dict(sorted(service.spec.depends_on.items()))
    for cycle in _cycles(graph):
        dependency = parsed[cycle[0]].dependencies[cycle[1]]
        ctx.error(dependency.path, dependency.mark, f"dependency cycle: {' -> '.join(cycle)}; "
                                                    "remove one of these depends_on entries")
    return _deploy_order(graph)


def _check_ports(ctx: Context, parsed: Mapping[str, ParsedService]) -> None:
    seen: list[Any] = []
    for name, service in parsed.items():
        for port in service.published:
            for earlier in seen:
                if port.clashes_with(earlier):
                    where = "this service" if earlier.path.split(".")[1] == name else \
                        f"services.{earlier.path.split('.')[1]}"
                    ctx.error(port.path, port.mark, f"host port {port.host_port}/{port.protocol}"
                              f" is already published by {where} ({earlier.path}, line "
                              f"{earlier.mark[0]}); a host port belongs to one service (the "
                              "replicas of a service share it)")
                    break
            else:
                seen.append(port)


def parse_compose(text: str, *, stack_name: str | None = None,
                  environment: Mapping[str, Any] | None = None,
                  allow_bind_mounts: bool = False, files: Mapping[str, str] | None = None,
                  secret_names: Collection[str] = ()) -> StackSpec:
    """Validate compose `text` and resolve it into a StackSpec.

    `stack_name` names the stack (it wins over the file's `name:`, as `-p` does in compose);
    `environment` supplies ${VAR} values (`secret_names`: those whose values are secret
    references); `files` is the stack's directory (relative path -> text, see files.py);
    `allow_bind_mounts` is true only when the actor is a platform admin. Raises ComposeError
    listing every problem with its path, line and column."""
    root = load(text)
    if not root.is_map:
        raise ComposeError([Issue(root.mark[0], root.mark[1], "",
                                  "a compose file is a mapping with a services: key, not "
                                  f"{describe(root.plain())}")])
    env = {str(k): str(v) for k, v in (environment or {}).items() if v is not None}
    ctx = Context(allow_bind_mounts=allow_bind_mounts, environment=env, files=dict(files or {}),
                  secret_names=frozenset(secret_names))
    warnings: list[dict[str, Any]] = []
    root = interpolate(root, env, ctx.issues, warnings=warnings)
    # a value whose interpolation failed is reported once, not again by the checks that follow
    failed = {(issue.line, issue.column) for issue in ctx.issues.items}
    interpolation_issues = list(ctx.issues.items)
    check_keys(ctx, root, "", TOP_KEYS, TOP_REFUSED)
    fields = root.value
    stack = _stack_name(ctx, fields, root, stack_name)
    volumes = _volumes(ctx, fields["volumes"], stack) if "volumes" in fields else {}
    networks = _networks(ctx, fields["networks"], stack) if "networks" in fields else {}
    default = networks["default"].name if "default" in networks else f"{stack}_default"
    secret_files: set[str] = set()
    refs = StackRefs(volumes=volumes, networks=networks, default_network=default, stack=stack,
                     secrets=parse_objects(ctx, fields["secrets"], "secret", ctx.secret_names,
                                           secret_files) if "secrets" in fields else {},
                     configs=parse_objects(ctx, fields["configs"], "config", ctx.secret_names,
                                           secret_files) if "configs" in fields else {},
                     secret_files=secret_files)

    parsed: dict[str, ParsedService] = {}
    services_node = fields.get("services")
    if services_node is None or (services_node.is_map and not services_node.value):
        mark = root.key_mark("services") if "services" in fields else (1, 1)
        ctx.error("services", mark, "a stack needs at least one service: services: {web: "
                                    "{image: nginx:1.27}}")
    elif mapping(ctx, services_node, "services", "{web: {image: nginx:1.27}}") is not None:
        services_node = apply_extends(ctx, services_node)
        for name, definition in services_node.value.items():
            key_mark = services_node.key_mark(name)
            if not SERVICE_NAME.fullmatch(name):
                ctx.error(join("services", name), key_mark,
                          f"{name!r} is not a valid service name: use letters, digits, '.', "
                          "'_' and '-'")
                continue
            service = parse_service(ctx, name, definition, join("services", name), refs,
                                    key_mark)
            if service is not None:
                parsed[name] = service
    every_service = set(parsed)
    parsed = drop_inactive(parsed, active_profiles(env))
    settle(ctx, parsed, stack, every_service)
    order = _check_dependencies(ctx, parsed)
    _check_ports(ctx, parsed)
    if "default" not in networks and any("default" in s.networks_used for s in parsed.values()):
        try:
            validate_network_name(default)
        except InvalidArgument as exc:
            ctx.error("name", (1, 1), f"the default network's name is not valid: {exc}")
        networks["default"] = NetworkSpec(name=default)
    ctx.issues.items = interpolation_issues + [
        issue for issue in ctx.issues.items[len(interpolation_issues):]
        if (issue.line, issue.column) not in failed]
    ctx.issues.raise_if_any()
    return StackSpec(
        name=stack,
        services={name: parsed[name].spec for name in sorted(parsed)},
        volumes=dict(sorted(volumes.items())),
        networks=dict(sorted(networks.items())),
        order=order,
        warnings=warnings,
        secret_files=sorted(secret_files),
    )
