"""`ports:` of a service, short ("[IP:][HOST:]CTR[/PROTO]", with ranges "8000-8001:80-81") and
long syntax, each checked by the runtime's own `-p` parser and written back as one canonical
"[IP:][HOST:]CTR[/udp]" string per port (ranges expanded)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from panel.stacks.compose.errors import Mark
from panel.stacks.compose.loader import Node
from panel.stacks.compose.values import Context, check_keys, describe, integer, join, string
from runtime.errors import InvalidArgument
from runtime.network.ports import PortSpec, parse_port_spec

MAX_RANGE = 1000
LONG_KEYS = ("target", "published", "host_ip", "protocol", "mode")
LONG_REFUSED = {
    "name": "port names are not supported; remove name",
    "app_protocol": "app_protocol is not supported; remove it",
}
SHORT_FORMS = '"[IP:][HOST:]CTR[/tcp|udp]", e.g. "8080:80", "127.0.0.1:5353:53/udp"'
_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


@dataclass(frozen=True)
class Published:
    """A host port one service publishes (for the duplicate check across services)."""

    host_ip: str
    host_port: int
    protocol: str
    path: str
    mark: Mark

    def clashes_with(self, other: Published) -> bool:
        wildcard = ("", "0.0.0.0")
        same_ip = self.host_ip in wildcard or other.host_ip in wildcard or \
            self.host_ip == other.host_ip
        return (self.host_port == other.host_port and self.protocol == other.protocol
                and same_ip)


def canonical(spec: PortSpec) -> str:
    host = str(spec.host_port) if spec.host_port else ""
    if spec.host_ip:
        text = f"{spec.host_ip}:{host}:{spec.container_port}"
    else:
        text = f"{host}:{spec.container_port}" if host else str(spec.container_port)
    return text + ("/udp" if spec.protocol == "udp" else "")


def _runtime_message(exc: InvalidArgument) -> str:
    return re.sub(r"^-p ", "", str(exc))


def _span(ctx: Context, text: str, path: str, mark: Mark, what: str) -> range | None:
    match = _RANGE.fullmatch(text)
    if not match:
        ctx.error(path, mark, f"{what} {text!r} is not a port or a range START-END; allowed "
                              f"{SHORT_FORMS}")
        return None
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if end < start or end - start >= MAX_RANGE:
        ctx.error(path, mark, f"{what} range {text!r} must go upwards and span at most "
                              f"{MAX_RANGE} ports")
        return None
    return range(start, end + 1)


def _short(ctx: Context, text: str, path: str, mark: Mark) -> list[PortSpec]:
    body, slash, protocol = text.partition("/")
    parts = body.rsplit(":", 2)
    host_ip = parts[0] + ":" if len(parts) == 3 else ""
    host = parts[-2] if len(parts) >= 2 else ""
    if "-" not in body.split("]")[-1]:
        singles = [text]
    else:
        containers = _span(ctx, parts[-1], path, mark, "container port")
        hosts = _span(ctx, host, path, mark, "host port") if host else None
        if containers is None or (host and hosts is None):
            return []
        if hosts is not None and len(hosts) != len(containers):
            ctx.error(path, mark, f"{text!r}: a host port range needs a container port range of "
                                  "the same length (e.g. 8000-8001:80-81)")
            return []
        suffix = slash + protocol
        singles = [f"{host_ip}{hosts[i] if hosts else ''}{':' if host_ip or hosts else ''}"
                   f"{port}{suffix}" for i, port in enumerate(containers)]
    specs = []
    for single in singles:
        try:
            specs.append(parse_port_spec(single))
        except InvalidArgument as exc:
            ctx.error(path, mark, f"{_runtime_message(exc)}; allowed {SHORT_FORMS}")
            return []
    return specs


def _long(ctx: Context, node: Node, path: str) -> list[PortSpec]:
    check_keys(ctx, node, path, LONG_KEYS, LONG_REFUSED)
    fields = node.value
    if "target" not in fields:
        ctx.error(path, node.mark, "target: is required: the container port, e.g. target: 80")
        return []
    target = integer(ctx, fields["target"], join(path, "target"), minimum=1)
    published = ""
    if "published" in fields:
        item = fields["published"]
        value = string(ctx, item, join(path, "published"), numbers=True)
        if value is None:
            return []
        if not value.isdigit():
            ctx.error(join(path, "published"), item.mark, f"{value!r} is not a port number: "
                      "give one host port (use the short syntax for ranges)")
            return []
        published = value
    host_ip = ""
    if "host_ip" in fields:
        host_ip = string(ctx, fields["host_ip"], join(path, "host_ip")) or ""
    protocol = "tcp"
    if "protocol" in fields:
        protocol = string(ctx, fields["protocol"], join(path, "protocol")) or "tcp"
    if "mode" in fields:
        mode = fields["mode"]
        if mode.value not in ("ingress", "host"):
            ctx.error(join(path, "mode"), mode.mark, f"mode must be ingress or host, not "
                      f"{describe(mode.value)} (both publish the port on each host that runs a "
                      "replica; replicas on one host share it)")
    if target is None:
        return []
    text = f"{host_ip}:{published}:{target}" if host_ip else \
        (f"{published}:{target}" if published else str(target))
    try:
        return [parse_port_spec(f"{text}/{protocol}")]
    except InvalidArgument as exc:
        ctx.error(path, node.mark, _runtime_message(exc))
        return []


def parse_ports(ctx: Context, node: Node, path: str) -> tuple[list[str], list[Published]]:
    """The canonical port strings of a service and the host ports it publishes."""
    if not node.is_seq:
        ctx.error(path, node.mark, f"must be a list of ports ({SHORT_FORMS}, or mappings with "
                                   f"target, published, host_ip, protocol, mode), not "
                                   f"{describe(node.plain())}")
        return [], []
    ports: list[str] = []
    published: list[Published] = []
    for index, item in enumerate(node.value):
        item_path = join(path, index)
        if item.is_map:
            specs = _long(ctx, item, item_path)
        elif isinstance(item.value, int) and not isinstance(item.value, bool):
            specs = _short(ctx, str(item.value), item_path, item.mark)
        elif isinstance(item.value, str):
            specs = _short(ctx, item.value.strip(), item_path, item.mark)
        else:
            ctx.error(item_path, item.mark, f"must be a port string ({SHORT_FORMS}) or a "
                                            f"mapping with target:, not {describe(item.value)}")
            continue
        for spec in specs:
            ports.append(canonical(spec))
            if spec.host_port:
                published.append(Published(spec.host_ip, spec.host_port, spec.protocol,
                                           item_path, item.mark))
    return ports, published
