"""Network records on disk.

Layout under the runtime root:

    networks/records/<name>.json   one network, with docker's field names (inspect prints it)
    networks/ipam/<name>.json      its address leases (ipam.py)
    networks/sandboxes/<id>.json   what is wired for one container (provider.py)
    networks/ports.json            published ports (ports.py)
    networks/dns/                  aardvark-dns configuration (dns.py)
    networks/.lock                 serialises network create/remove across processes
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from runtime import fsutil
from runtime.errors import InvalidArgument, NotFound

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
RESERVED_NAMES = ("none", "host", "bridge", "default")
DEFAULT_NETWORK = "berth"


def validate_name(name: str) -> str:
    """A network name docker would accept, and not one of the special modes."""
    if not NAME_RE.match(name or ""):
        raise InvalidArgument(f"network name {name!r} is invalid: use 1-64 letters, digits, "
                              "'_', '.' or '-', starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise InvalidArgument(f"network name {name!r} is reserved (none, host, bridge and "
                              "default are network modes); choose another name")
    return name


@dataclass
class Network:
    """One bridge network."""

    id: str
    name: str
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""

    @property
    def bridge(self) -> str:
        from runtime.network.bridge import bridge_name

        return bridge_name(self.id)

    @property
    def gateway_interface(self) -> IPv4Interface:
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    def to_json(self) -> dict[str, Any]:
        """Docker's `network inspect` shape (Containers is filled in by the caller)."""
        return {
            "Name": self.name, "Id": self.id, "Created": self.created, "Scope": "local",
            "Driver": "bridge", "EnableIPv6": False, "Internal": self.internal,
            "Attachable": True, "Ingress": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": str(self.subnet), "Gateway": str(self.gateway)}]},
            "Options": {"com.docker.network.bridge.name": self.bridge},
            "Labels": dict(self.labels),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Network:
        config = data["IPAM"]["Config"][0]
        return cls(id=data["Id"], name=data["Name"], subnet=IPv4Network(config["Subnet"]),
                   gateway=IPv4Address(config["Gateway"]), internal=bool(data["Internal"]),
                   labels=dict(data.get("Labels") or {}), created=data.get("Created", ""))


def new_network(name: str, subnet: IPv4Network, gateway: IPv4Address, internal: bool,
                labels: dict[str, str]) -> Network:
    return Network(id=secrets.token_hex(32), name=name, subnet=subnet, gateway=gateway,
                   internal=internal, labels=labels,
                   created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


class NetworkStore:
    """The network records of one root."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "networks"
        self.records = self.dir / "records"
        self.lock_path = self.dir / ".lock"

    def lock(self):
        return fsutil.locked(self.lock_path)

    def save(self, network: Network) -> None:
        fsutil.write_json_atomic(self.records / f"{network.name}.json", network.to_json())

    def delete(self, network: Network) -> None:
        (self.records / f"{network.name}.json").unlink(missing_ok=True)

    def load(self, name: str) -> Network | None:
        if not NAME_RE.match(name):
            return None
        data = fsutil.read_json(self.records / f"{name}.json")
        return Network.from_json(data) if data else None

    def all(self) -> list[Network]:
        if not self.records.is_dir():
            return []
        found = []
        for path in sorted(self.records.glob("*.json")):
            data = fsutil.read_json(path)
            if data:
                found.append(Network.from_json(data))
        return found

    def find(self, ref: str) -> Network:
        """By name, full id or unique id prefix."""
        by_name = self.load(ref)
        if by_name is not None:
            return by_name
        matches = [n for n in self.all() if ref and n.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"no such network: {ref!r}; `berth-runtime network ls` lists them")
