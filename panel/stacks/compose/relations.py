"""What one service says about another, settled once the whole file is read: `extends` (a
service of the same file as a base), `profiles` (services left out unless their profile is
active), `network_mode: service:NAME` and `links`."""

from __future__ import annotations

from collections.abc import Mapping

from panel.stacks.compose.loader import Node
from panel.stacks.compose.service import Dependency, ParsedService
from panel.stacks.compose.spec import SERVICE_STARTED
from panel.stacks.compose.values import Context, describe, join, mapping, string

EXTENDS_KEYS = ("service", "file")


def apply_extends(ctx: Context, services: Node) -> Node:
    """`services` with every `extends: {service: BASE}` (or `extends: BASE`) replaced by the
    base's keys under the service's own (the service's keys win; a chain is followed, a cycle
    refused). `file:` is refused: a stack is one file."""
    if not services.is_map:
        return services
    merged: dict[str, Node] = {}

    def resolved(name: str, trail: tuple[str, ...]) -> Node | None:
        if name in merged:
            return merged[name]
        node = services.value[name]
        if not node.is_map or "extends" not in node.value:
            merged[name] = node
            return node
        path = join(join("services", name), "extends")
        item = node.value["extends"]
        if item.is_map:
            fields = mapping(ctx, item, path, "{service: base}") or {}
            for key in sorted(set(fields) - set(EXTENDS_KEYS)):
                ctx.error(join(path, key), item.key_mark(key),
                          f"unknown key {key!r}: allowed {', '.join(EXTENDS_KEYS)}")
            if "file" in fields:
                ctx.error(join(path, "file"), item.key_mark("file"),
                          "extends from another file is not supported: a stack is one compose "
                          "file; copy the base service into it")
                return None
            base = string(ctx, fields["service"], join(path, "service"), empty=False) \
                if "service" in fields else None
            if base is None and "service" not in fields:
                ctx.error(path, item.mark, "service: is required (the service to extend)")
        else:
            base = string(ctx, item, path, empty=False)
        if base is None:
            return None
        if base not in services.value:
            ctx.error(path, item.mark, f"unknown service {base!r} to extend: this file's "
                                       f"services are {', '.join(sorted(services.value))}")
            return None
        if base in trail:
            ctx.error(path, item.mark, f"extends cycle: {' -> '.join([*trail, base])}")
            return None
        parent = resolved(base, (*trail, base))
        if parent is None or not parent.is_map:
            return None
        values = {**parent.value, **{k: v for k, v in node.value.items() if k != "extends"}}
        marks = {**parent.key_marks, **node.key_marks}
        merged[name] = Node(values, node.mark, marks)
        return merged[name]

    out = {}
    for name in services.value:
        node = resolved(name, (name,))
        out[name] = node if node is not None else services.value[name]
    return Node(out, services.mark, services.key_marks)


def active_profiles(environment: Mapping[str, str]) -> set[str]:
    """COMPOSE_PROFILES of the stack's environment (comma separated), as Compose reads it."""
    return {p.strip() for p in environment.get("COMPOSE_PROFILES", "").split(",") if p.strip()}


def drop_inactive(parsed: dict[str, ParsedService], active: set[str]) -> dict[str, ParsedService]:
    """The services to deploy: those without profiles, and those with an active one."""
    return {name: service for name, service in parsed.items()
            if not service.profiles or set(service.profiles) & active}


def settle(ctx: Context, parsed: dict[str, ParsedService], stack: str,
           all_names: set[str]) -> None:
    """Dependencies implied by links and `network_mode: service:`; link aliases; optional
    dependencies on services this deploy leaves out."""
    for name, service in parsed.items():
        for target in list(service.dependencies):
            if target not in parsed and target in service.optional:
                del service.dependencies[target]  # required: false
            elif target not in parsed and target in all_names:
                dependency = service.dependencies[target]
                ctx.error(dependency.path, dependency.mark,
                          f"{target!r} is in a profile that is not active: add its profile to "
                          "COMPOSE_PROFILES in the stack's environment, or remove the "
                          "dependency")
                del service.dependencies[target]
        for target, alias, dependency in service.links:
            if target not in parsed:
                ctx.error(dependency.path, dependency.mark,
                          f"unknown service {target!r} to link: this stack's services are "
                          f"{', '.join(sorted(parsed))}")
                continue
            service.dependencies.setdefault(target, dependency)
            if alias and alias != target:
                for network in parsed[target].spec.container.get("networks") or []:
                    names = parsed[target].spec.aliases.setdefault(network, [])
                    if alias not in names:
                        names.append(alias)
                        names.sort()
        if service.network_service is not None:
            _join_service(ctx, name, service, parsed, stack)


def _join_service(ctx: Context, name: str, service: ParsedService,
                  parsed: dict[str, ParsedService], stack: str) -> None:
    target, dependency = service.network_service_name, service.network_service
    assert dependency is not None
    if target not in parsed or target == name:
        ctx.error(dependency.path, dependency.mark,
                  f"network_mode service:{target}: {describe(target)} is not another service "
                  f"of this stack ({', '.join(sorted(parsed))})")
        return
    other = parsed[target].spec.container
    container = other.get("name") or f"{stack}-{target}-1"  # the engine names slot 1 so
    service.spec.container["network_mode"] = f"container:{container}"
    service.dependencies.setdefault(target, Dependency(SERVICE_STARTED, dependency.path,
                                                       dependency.mark))
