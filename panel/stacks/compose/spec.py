"""The resolved stack: what a compose file means once validated, as plain JSON-ready data.

`ServiceSpec.container` is the container spec of each replica: the fields of
`runtime.protocol.ContainerSpec` (CONTAINER_KEYS: all but those the engine sets per replica), in
the shape `panel.workloads.spec.parse_container_request` returns (`env` an object). Names of
volumes and networks in it are the real (stack-prefixed) names. The fields stacks had before the
spec was one type (`LEGACY_HASH_FIELDS`) are always present; the others only when they differ
from their default (`compact_container`), so two specs compare and hash equal exactly when they
mean the same thing, and a field added to the spec changes no stored spec and no hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.protocol import LEGACY_HASH_FIELDS, field_names, hash_form

# set per replica by the engine (name, DNS aliases, port group), never by the file
ENGINE_KEYS = ("name", "network_aliases", "port_group")
CONTAINER_KEYS = tuple(name for name in field_names() if name not in ENGINE_KEYS)
# Swarm's defaults, which compose files are written against (durations in nanoseconds).
UPDATE_DEFAULTS: dict[str, Any] = {"parallelism": 1, "delay": 0, "order": "stop-first",
                                   "failure_action": "pause", "monitor": 5_000_000_000}
SERVICE_STARTED, SERVICE_HEALTHY = "service_started", "service_healthy"


@dataclass
class ServiceSpec:
    """One service: the spec of its containers and how many to run and roll."""

    name: str
    container: dict[str, Any]
    replicas: int = 1
    update_config: dict[str, Any] = field(default_factory=lambda: dict(UPDATE_DEFAULTS))
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    # network name -> extra DNS names from the file; the service name itself is always an alias
    # on each of its networks and is not listed
    aliases: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "container": compact_container(self.container)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceSpec:
        return cls(**data)


@dataclass
class VolumeSpec:
    """A named volume of the stack; `external` ones must exist already and are never removed."""

    name: str
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NetworkSpec:
    """A bridge network of the stack (`subnet`/`gateway` empty: Berth picks them)."""

    name: str
    external: bool = False
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    subnet: str = ""
    gateway: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackSpec:
    """A whole stack. `volumes` and `networks` are keyed by their compose names; `order` lists
    the services so that each comes after those it depends on (ties by name)."""

    name: str
    services: dict[str, ServiceSpec]
    volumes: dict[str, VolumeSpec] = field(default_factory=dict)
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    # what the file did that Compose also only warns about ({path, line, column, message});
    # not part of the stored spec
    warnings: list[dict[str, Any]] = field(default_factory=list, compare=False)
    # the stack's files used as a secret's file: (kept encrypted); not part of the stored spec
    secret_files: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "services": {name: spec.to_dict() for name, spec in sorted(self.services.items())},
            "volumes": {key: spec.to_dict() for key, spec in sorted(self.volumes.items())},
            "networks": {key: spec.to_dict() for key, spec in sorted(self.networks.items())},
            "order": list(self.order),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackSpec:
        return cls(
            name=data["name"],
            services={n: ServiceSpec.from_dict(s) for n, s in data["services"].items()},
            volumes={k: VolumeSpec(**v) for k, v in data.get("volumes", {}).items()},
            networks={k: NetworkSpec(**v) for k, v in data.get("networks", {}).items()},
            order=list(data.get("order", [])),
        )

    def to_json(self) -> str:
        return canonical_json(self.to_dict())


def compact_container(container: dict[str, Any]) -> dict[str, Any]:
    """The container as stored and hashed: every legacy field (present even as None, as
    before), the other spec fields only when they differ from their default."""
    compact = hash_form(container)
    for key in LEGACY_HASH_FIELDS:
        compact.setdefault(key, None)
    return compact


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(data: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(data).encode()).hexdigest()


def service_spec_hash(spec: ServiceSpec) -> str:
    """A stable hash of everything resolved for one service (containers, replicas, update
    policy, dependencies): equal hashes mean a redeploy has nothing to change for it."""
    return _digest(spec.to_dict())


def container_spec_hash(spec: ServiceSpec) -> str:
    """A stable hash of what the service's containers are made from (not replicas, update
    policy or ordering): when only this is unchanged, a redeploy scales but recreates nothing."""
    return _digest({"container": compact_container(spec.container), "aliases": spec.aliases})
