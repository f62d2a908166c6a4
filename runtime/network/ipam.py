"""IP address management: subnets for networks, addresses for containers.

Subnets come from a pool (env BERTH_NETWORK_POOL, default 10.89.0.0/16, split into /24s; a pool
smaller than /24 is used whole). A subnet is never handed to a network when it overlaps another
network of this root or any route the host already has (its own LANs, VPNs, other engines'
bridges), so a new bridge never shadows something reachable.

Addresses are leased per network in `ROOT/networks/ipam/<network>.json`:

    {"Next": "10.89.0.7", "Leases": {"10.89.0.2": "<owner id>", …}}

Every read-modify-write holds an flock on the file's `.lock` sibling, so two `berth-runtime run`
processes (or the agent and the CLI) never lease one address twice. Allocation walks forward from
`Next` (wrapping round), so an address freed a moment ago is the last to be handed out again: a
peer that still caches the old name → address answer does not reach a stranger.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from runtime import fsutil
from runtime.errors import Conflict, InvalidArgument

POOL_ENV = "BERTH_NETWORK_POOL"
DEFAULT_POOL = "10.89.0.0/16"
SUBNET_PREFIX = 24


def parse_subnet(text: str, field: str = "--subnet") -> IPv4Network:
    """A strict IPv4 CIDR ("10.90.0.0/24"); host bits set or a prefix longer than /30 is an
    error naming `field`."""
    try:
        subnet = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidArgument(
            f"{field} {text!r} is not a valid IPv4 subnet ({exc}); write it as "
            "ADDRESS/PREFIX with the host bits zero, e.g. 10.90.0.0/24"
        ) from None
    if not isinstance(subnet, IPv4Network):
        raise InvalidArgument(f"{field} {text!r}: only IPv4 subnets are supported")
    if subnet.prefixlen > 30:
        raise InvalidArgument(f"{field} {text!r} is too small: use a prefix of /30 or shorter")
    return subnet


def parse_address(text: str, field: str) -> IPv4Address:
    """An IPv4 address, or InvalidArgument naming `field`."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{field} {text!r} is not an IPv4 address (e.g. 10.89.0.5)") from None
    if not isinstance(address, IPv4Address):
        raise InvalidArgument(f"{field} {text!r}: only IPv4 addresses are supported")
    return address


def pool_subnets(pool_text: str | None = None) -> list[IPv4Network]:
    """The candidate subnets of the pool, in order."""
    text = pool_text if pool_text is not None else os.environ.get(POOL_ENV, DEFAULT_POOL)
    pool = parse_subnet(text, field=POOL_ENV)
    if pool.prefixlen >= SUBNET_PREFIX:
        return [pool]
    return list(pool.subnets(new_prefix=SUBNET_PREFIX))


def host_routes() -> list[IPv4Network]:
    """Destinations of the host's IPv4 routes (main table), default routes excepted."""
    from pyroute2 import IPRoute

    found: list[IPv4Network] = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            if not route["dst_len"]:
                continue
            dst = route.get_attr("RTA_DST")
            if dst:
                found.append(IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
    return found


def choose_subnet(taken: Iterable[IPv4Network], pool: list[IPv4Network]) -> IPv4Network:
    """The first pool subnet that overlaps nothing in `taken` (1. walk the pool in order;
    2. skip any candidate overlapping a taken network or route; 3. fail when none is left)."""
    taken = list(taken)
    for candidate in pool:
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise Conflict(
        f"the network pool {pool[0].supernet(new_prefix=pool[0].prefixlen) if pool else ''} "
        f"has no free subnet left; remove unused networks, pass --subnet, or set {POOL_ENV} "
        "to a larger range"
    )


def check_subnet_free(subnet: IPv4Network, taken: dict[str, IPv4Network]) -> None:
    """Conflict naming the network or route that `subnet` overlaps."""
    for owner, other in taken.items():
        if subnet.overlaps(other):
            raise Conflict(f"subnet {subnet} overlaps {other} of {owner}; choose another "
                           "--subnet or leave it out to get a free one from the pool")


def gateway_for(subnet: IPv4Network, requested: str | None) -> IPv4Address:
    """The gateway: `requested` (validated: inside the subnet, a host address) or the first
    host address."""
    if requested is None:
        return next(subnet.hosts())
    gateway = parse_address(requested, "--gateway")
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"--gateway {gateway} is not a host address of subnet {subnet}")
    return gateway


class AddressBook:
    """The address leases of one network, shared safely between processes."""

    def __init__(self, directory: Path, network: str, subnet: IPv4Network, gateway: IPv4Address):
        self.path = directory / f"{network}.json"
        self.lock_path = directory / f"{network}.lock"
        self.network = network
        self.subnet = subnet
        self.gateway = gateway

    def leases(self) -> dict[str, str]:
        """Address → owner id."""
        return dict((fsutil.read_json(self.path, {}) or {}).get("Leases", {}))

    def address_of(self, owner: str) -> IPv4Address | None:
        for address, holder in self.leases().items():
            if holder == owner:
                return IPv4Address(address)
        return None

    def allocate(self, owner: str, requested: str | None = None,
                 is_live: Callable[[str], bool] | None = None) -> IPv4Address:
        """Lease an address to `owner` (the one it already holds, `requested`, or the next free
        one). Leases of owners for which `is_live` says False are reclaimed first."""
        with fsutil.locked(self.lock_path):
            state = fsutil.read_json(self.path, {}) or {}
            leases: dict[str, str] = dict(state.get("Leases", {}))
            if is_live is not None:
                leases = {a: o for a, o in leases.items() if o == owner or is_live(o)}
            held = [a for a, o in leases.items() if o == owner]
            if requested is not None:
                address = self._check_requested(requested, leases, owner)
                for old in held:
                    del leases[old]
            elif held:
                address = IPv4Address(held[0])
            else:
                address = self._next_free(leases, state.get("Next"))
            leases[str(address)] = owner
            fsutil.write_json_atomic(self.path, {"Next": str(address + 1), "Leases": leases})
            return address

    def release(self, owner: str) -> None:
        """Free every address `owner` holds (idempotent)."""
        with fsutil.locked(self.lock_path):
            state = fsutil.read_json(self.path, None)
            if not state:
                return
            leases = {a: o for a, o in state.get("Leases", {}).items() if o != owner}
            if leases != state.get("Leases", {}):
                fsutil.write_json_atomic(self.path, {**state, "Leases": leases})

    def destroy(self) -> None:
        """Forget every lease (the network is being removed)."""
        self.path.unlink(missing_ok=True)
        self.lock_path.unlink(missing_ok=True)

    def _check_requested(self, text: str, leases: dict[str, str], owner: str) -> IPv4Address:
        address = parse_address(text, "--ip")
        if address not in self.subnet or address in (
                self.subnet.network_address, self.subnet.broadcast_address):
            raise InvalidArgument(f"--ip {address} is outside network {self.network!r} "
                                  f"(subnet {self.subnet}); pick a host address inside it")
        if address == self.gateway:
            raise Conflict(f"--ip {address} is the gateway of network {self.network!r}")
        holder = leases.get(str(address))
        if holder is not None and holder != owner:
            raise Conflict(f"--ip {address} is already in use on network {self.network!r} "
                           f"(by {holder[:12]}); pick another address or leave --ip out")
        return address

    def _next_free(self, leases: dict[str, str], cursor: str | None) -> IPv4Address:
        first = int(self.subnet.network_address) + 1
        last = int(self.subnet.broadcast_address) - 1
        start = int(IPv4Address(cursor)) if cursor else first
        if not first <= start <= last:
            start = first
        span = last - first + 1
        for step in range(span):
            candidate = IPv4Address(first + (start - first + step) % span)
            if candidate != self.gateway and str(candidate) not in leases:
                return candidate
        raise Conflict(f"network {self.network!r} ({self.subnet}) has no free address left; "
                       "remove containers from it or create a network with a larger subnet")
