"""Published ports: parsing `-p` specs, choosing free host ports, detecting conflicts.

A reservation is checked against two things before anything is created:
1. the ports this root has already published (`ROOT/networks/ports.json`, under an flock), and
2. the host itself: a socket is bound to (HOST_IP, PORT) for a moment — if a host process holds
   the port, that fails with EADDRINUSE and the user is told which port is taken.
A port given as 0 (`-p 80`, `-P`) is chosen by the kernel the same way (bind to port 0), then
checked against this root's reservations.

Port groups: bindings reserved with the same non-empty `group` (the replicas of one stack
service, runtime/protocol.py `port_group`) share their host port instead of conflicting; the
rules spread new connections over the members whose binding is `serving` (filtering.py). A
member with a health check starts not serving and joins when it turns healthy; a member being
stopped leaves first (`set_serving`), so a rolling update never sends a connection to a replica
that is not ready or already going away.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime import fsutil
from runtime.errors import Conflict, InvalidArgument

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortSpec:
    """One `-p [IP:][HOST:]CTR[/PROTO]` request; host_port 0 means "pick a free one"."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    @property
    def key(self) -> str:
        """Docker's port key, "80/tcp"."""
        return f"{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class Binding:
    """A reserved published port of one owner (container)."""

    owner: str
    host_ip: str
    host_port: int
    protocol: str
    container_port: int
    container_ip: str = ""
    group: str = ""  # replicas sharing this host port ("" = the port is this owner's alone)
    serving: bool = True  # in the rules; a group member not (yet) healthy is reserved only


def _port(text: str, spec: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(f"-p {spec!r}: {what} {text!r} is not a port number 1-65535")
    return int(text)


def parse_port_spec(spec: str) -> PortSpec:
    """Parse docker's `-p` syntax: CTR, HOST:CTR, IP:HOST:CTR, IP::CTR, each with /tcp|/udp."""
    body, _, protocol = spec.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise InvalidArgument(f"-p {spec!r}: protocol {protocol!r} is not one of tcp, udp")
    parts = body.rsplit(":", 2)
    host_ip = host_port = ""
    if len(parts) == 3:
        host_ip, host_port, container = parts
    elif len(parts) == 2:
        host_port, container = parts
    else:
        (container,) = parts
    if host_ip:
        host_ip = host_ip.strip("[]")
        try:
            host_ip = str(ipaddress.IPv4Address(host_ip))
        except ValueError:
            raise InvalidArgument(f"-p {spec!r}: {host_ip!r} is not an IPv4 address") from None
    return PortSpec(
        container_port=_port(container, spec, "container port"), protocol=protocol,
        host_ip=host_ip, host_port=_port(host_port, spec, "host port") if host_port else 0,
    )


class PortTable:
    """The ports published by one root, shared safely between processes."""

    def __init__(self, directory: Path):
        self.path = directory / "ports.json"
        self.lock_path = directory / "ports.lock"

    def bindings(self) -> list[Binding]:
        return [Binding(**b) for b in fsutil.read_json(self.path, []) or []]

    def reserve(self, owner: str, specs: list[PortSpec], container_ip: str = "",
                group: str = "", serving: bool = True) -> list[Binding]:
        """Reserve every spec for `owner` (forwarding to `container_ip`), all or nothing;
        Conflict names the taken port. Members of one `group` share host ports."""
        with fsutil.locked(self.lock_path):
            existing = [b for b in self.bindings() if b.owner != owner]
            chosen: list[Binding] = []
            for spec in specs:
                port = spec.host_port or _free_port(spec.host_ip, spec.protocol,
                                                    existing + chosen)
                binding = Binding(owner, spec.host_ip, port, spec.protocol, spec.container_port,
                                  container_ip, group, serving if group else True)
                if spec.host_port:
                    _check_free(binding, existing + chosen, owner)
                chosen.append(binding)
            fsutil.write_json_atomic(self.path, [asdict(b) for b in existing + chosen])
            return chosen

    def check(self, owner: str, specs: list[PortSpec], group: str = "") -> None:
        """Conflict if `specs` could not be reserved now (reserves nothing)."""
        with fsutil.locked(self.lock_path):
            existing = [b for b in self.bindings() if b.owner != owner]
            chosen: list[Binding] = []
            for spec in specs:
                if not spec.host_port:
                    continue
                binding = Binding(owner, spec.host_ip, spec.host_port, spec.protocol,
                                  spec.container_port, group=group)
                _check_free(binding, existing + chosen, owner)
                chosen.append(binding)

    def set_serving(self, owner: str, serving: bool) -> bool:
        """Let `owner`'s group bindings take new connections or not; whether anything changed
        (bindings outside a group always serve)."""
        with fsutil.locked(self.lock_path):
            bindings = self.bindings()
            changed = False
            for index, binding in enumerate(bindings):
                if binding.owner == owner and binding.group and binding.serving != serving:
                    bindings[index] = Binding(**{**asdict(binding), "serving": serving})
                    changed = True
            if changed:
                fsutil.write_json_atomic(self.path, [asdict(b) for b in bindings])
            return changed

    def release(self, owner: str) -> None:
        """Free the ports of `owner` (idempotent)."""
        with fsutil.locked(self.lock_path):
            bindings = self.bindings()
            kept = [b for b in bindings if b.owner != owner]
            if len(kept) != len(bindings):
                fsutil.write_json_atomic(self.path, [asdict(b) for b in kept])


def _check_free(binding: Binding, taken: list[Binding], owner: str) -> None:
    for other in taken:
        if _clash(binding, other):
            if binding.group and other.group == binding.group and other.owner != owner:
                return  # a replica of the same group holds it: shared, and no host probe
            who = "another port of this container" if other.owner == owner else \
                f"container {other.owner[:12]}"
            raise Conflict(f"host port {_where(binding)} is already published by {who}; "
                           "pick another host port or leave it out")
    _probe(binding)


def _clash(a: Binding, b: Binding) -> bool:
    if a.host_port != b.host_port or a.protocol != b.protocol:
        return False
    return not a.host_ip or not b.host_ip or a.host_ip == b.host_ip


def _where(binding: Binding) -> str:
    return f"{binding.host_ip or '0.0.0.0'}:{binding.host_port}/{binding.protocol}"


def _socket(protocol: str) -> socket.socket:
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    return socket.socket(socket.AF_INET, kind)


def _probe(binding: Binding) -> None:
    """Conflict if a host process holds the port."""
    with _socket(binding.protocol) as sock:
        try:
            sock.bind((binding.host_ip or "0.0.0.0", binding.host_port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"host port {_where(binding)} is already in use on this host; "
                               "pick another host port or leave it out") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"-p: {binding.host_ip} is not an address of this "
                                      "host") from None
            raise


def _free_port(host_ip: str, protocol: str, taken: list[Binding]) -> int:
    for _ in range(50):
        with _socket(protocol) as sock:
            try:
                sock.bind((host_ip or "0.0.0.0", 0))
            except OSError as exc:
                raise InvalidArgument(f"-p: cannot publish on {host_ip}: {exc.strerror}") from None
            port = sock.getsockname()[1]
        candidate = Binding("", host_ip, port, protocol, 0)
        if not any(_clash(candidate, other) for other in taken):
            return int(port)
    raise Conflict("no free host port found; publish with an explicit host port")
