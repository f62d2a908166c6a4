"""Links, addresses, routes and network namespaces through netlink (pyroute2), no `ip` tool.

Names (Linux allows 15 characters):
- a network's bridge is `bt-<10 hex of the network id>`;
- a container's host-side veth is `vb<12 hex>` (a hash of the sandbox id and the network), its
  other end is `eth0`, `eth1`… inside the namespace;
- a sandbox's namespace is `berth-<12 hex of the sandbox id>`, bound at /run/netns/NAME (where
  `ip netns` and runc find it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from runtime.errors import RuntimeFailure
from runtime.network import namespaces

NETNS_DIR = "/run/netns"
BRIDGE_PREFIX = "bt-"
VETH_PREFIX = "vb"
NETNS_PREFIX = "berth-"


def bridge_name(network_id: str) -> str:
    return f"{BRIDGE_PREFIX}{network_id[:10]}"


def veth_name(sandbox_id: str, network: str) -> str:
    digest = hashlib.sha256(f"{sandbox_id}/{network}".encode()).hexdigest()
    return f"{VETH_PREFIX}{digest[:12]}"


def netns_name(sandbox_id: str) -> str:
    return f"{NETNS_PREFIX}{sandbox_id[:12]}"


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


@contextlib.contextmanager
def _netlink(action: str) -> Iterator[IPRoute]:
    try:
        with IPRoute() as ipr:
            yield ipr
    except NetlinkError as exc:
        raise RuntimeFailure(f"{action}: the kernel refused it ({exc.args[-1]})") from None


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_exists(ifname: str) -> bool:
    with _netlink(f"look up link {ifname}") as ipr:
        return _index(ipr, ifname) is not None


def ensure_bridge(name: str, gateway: IPv4Interface) -> None:
    """Create bridge `name` with the gateway address and bring it up (idempotent). Its
    route_localnet is set so that ports published on 127.0.0.1 can be DNATed onto it.

    The bridge gets a MAC address of its own (as Docker's and netavark's bridges do): left
    unset, Linux gives a bridge the lowest MAC of its ports, so it changes whenever a container
    comes or goes, and the containers' cached neighbour entry for the gateway then points at a
    MAC nobody answers to (DNS and outbound traffic stall until it expires)."""
    with _netlink(f"create bridge {name}") as ipr:
        index = _index(ipr, name)
        if index is None:
            ipr.link("add", ifname=name, kind="bridge", address=_local_mac())
            index = _index(ipr, name)
        elif not _mac_pinned(name):  # made before bridges got their own MAC: keep the current
            mac = ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")
            ipr.link("set", index=index, address=mac)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(family=2, index=index)}
        if (str(gateway.ip), gateway.network.prefixlen) not in have:
            ipr.addr("add", index=index, address=str(gateway.ip),
                     prefixlen=gateway.network.prefixlen)
        ipr.link("set", index=index, state="up")
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def enable_forwarding() -> None:
    """Routing between bridges and the outside needs IPv4 forwarding on (it usually is)."""
    _sysctl("net/ipv4/ip_forward", "1")


def _local_mac() -> str:
    """A random, locally administered unicast MAC address."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def _mac_pinned(ifname: str) -> bool:
    """Whether the link's MAC was set explicitly (addr_assign_type 3, NET_ADDR_SET)."""
    try:
        with open(f"/sys/class/net/{ifname}/addr_assign_type") as f:
            return f.read().strip() == "3"
    except OSError:
        return True  # cannot tell: leave it alone


def delete_link(name: str) -> None:
    """Remove a link (bridge or veth) if it exists."""
    with _netlink(f"delete link {name}") as ipr:
        index = _index(ipr, name)
        if index is not None:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)


def create_netns(name: str, loopback_up: bool = True) -> str:
    """A new named network namespace, with `lo` up unless the caller does that itself (add_veth
    with `loopback_up`); returns its path."""
    def bring_up_loopback() -> None:
        with IPRoute() as ns:  # created inside the new namespace (namespaces.py)
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")

    try:
        namespaces.create(name, bring_up_loopback if loopback_up else None)
    except NetlinkError as exc:
        raise RuntimeFailure(f"create network namespace {name}: the kernel refused to bring "
                             f"up its loopback ({exc.args[-1]})") from None
    return netns_path(name)


def delete_netns(name: str) -> None:
    """Remove a named namespace (its veth ends go with it; the host ends follow)."""
    if os.path.exists(netns_path(name)):
        namespaces.remove(name)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def mac_for(address: IPv4Address | str) -> str:
    """A container interface's MAC address, derived from its IPv4 address as Docker does
    (02:42 and the four bytes): known before the interface exists, and stable for an address,
    so neighbours' ARP caches stay right when a container is recreated at the same address."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in IPv4Address(str(address)).packed)


def add_veth(ns_name: str, bridge: str, bridge_address: IPv4Interface, host_ifname: str,
             ifname: str, address: IPv4Interface, gateway: IPv4Address | None, mac: str,
             loopback_up: bool = False) -> None:
    """Wire a namespace onto a bridge (re-created with `bridge_address` if it went missing):
    a veth pair whose host end joins `bridge` and whose other end becomes `ifname` (with MAC
    address `mac`) in namespace `ns_name` with `address` and, when `gateway` is given, the
    default route; with `loopback_up`, `lo` is brought up too. On failure nothing stays.

    Two netlink sessions: one on the host creates the pair (the host end enslaved and up, the
    other end born in the namespace under its final name), one inside the namespace
    (namespaces.run_inside) gives it its address and route."""
    def configure_inside() -> None:
        with IPRoute() as ns:
            if loopback_up:
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            index = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=index, address=str(address.ip),
                    prefixlen=address.network.prefixlen)
            ns.link("set", index=index, state="up")
            if gateway is not None:
                ns.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=index)

    try:
        with _netlink(f"create veth {host_ifname}") as ipr:
            bridge_index = _index(ipr, bridge)
            if bridge_index is None:
                ensure_bridge(bridge, bridge_address)
                bridge_index = _index(ipr, bridge)
            namespace_fd = os.open(netns_path(ns_name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("add", ifname=host_ifname, kind="veth", master=bridge_index,
                         state="up", peer={"ifname": ifname, "address": mac,
                                           "net_ns_fd": namespace_fd})
            finally:
                os.close(namespace_fd)
        namespaces.run_inside(ns_name, configure_inside)
    except NetlinkError as exc:
        delete_link(host_ifname)
        raise RuntimeFailure(f"wire {ifname} of namespace {ns_name} onto {bridge}: "
                             f"the kernel refused it ({exc.args[-1]})") from None
    except BaseException:
        delete_link(host_ifname)
        raise


def links_with_prefix(*prefixes: str) -> list[str]:
    """Names of the host's links starting with one of `prefixes` (leak checks, reconcile)."""
    with _netlink("list links") as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return sorted(n for n in names if n and n.startswith(prefixes))


def _sysctl(key: str, value: str) -> None:
    path = f"/proc/sys/{key}"
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise RuntimeFailure(f"set {key.replace('/', '.')}={value}: {exc}") from None
