"""NetworkManager: bridge networks and the sandboxes (network namespaces) wired onto them.

    networks = NetworkManager(root)
    networks.create("web", subnet="10.90.0.0/24")
    sandbox = networks.setup("ctr-id", "ctr-name", [EndpointRequest("web")], [PortSpec(80)])
    sandbox["Path"]      # /run/netns/berth-…, for the OCI runtime to join
    # or in two steps, the second while the OCI runtime creates the container (provider.py):
    networks.setup(…, wire=False); networks.wire("ctr-id")
    networks.teardown("ctr-id")   # the container stopped: ports, DNS, veths, namespace go
    networks.forget("ctr-id")     # the container was removed: its addresses go too

Every network change re-renders the whole nftables table from the state on disk (filtering.py),
so the rules are reinstalled whenever anything touches them.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from runtime import fsutil
from runtime.errors import BerthError, Conflict, InvalidArgument, NotFound
from runtime.network import bridge, filtering, ipam
from runtime.network.dns import DnsServer
from runtime.network.ports import Binding, PortSpec, PortTable
from runtime.network.store import DEFAULT_NETWORK, Network, NetworkStore, new_network, validate_name


@dataclass
class EndpointRequest:
    """Attach to `network`, optionally at address `ip`, with extra DNS `aliases`."""

    network: str
    ip: str | None = None
    aliases: list[str] = field(default_factory=list)


class NetworkManager:
    """All networks and sandboxes of one runtime root."""

    def __init__(self, root: Path | str, is_live: Callable[[str], bool] | None = None,
                 describe: Callable[[str], str] | None = None):
        """`is_live(owner)` tells whether an address lease's owner still exists (leases of
        vanished owners are reclaimed); `describe(owner)` names an owner in messages."""
        self.root = Path(root)
        self.store = NetworkStore(self.root)
        self.ports = PortTable(self.store.dir)
        self.dns = DnsServer(self.store.dir / "dns")
        self.sandbox_dir = self.store.dir / "sandboxes"
        self.table = filtering.table_name(self.root)
        self.is_live = is_live
        self.describe = describe or (lambda owner: owner[:12])

    # -- networks ----------------------------------------------------------------------------
    def create(self, name: str, subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict[str, str] | None = None) -> Network:
        """Create a bridge network. Bad or overlapping input creates nothing."""
        validate_name(name)
        if gateway is not None and subnet is None:
            raise InvalidArgument("--gateway needs --subnet (the gateway must lie inside it)")
        with self.store.lock():
            return self._create_locked(name, subnet, gateway, internal, labels or {})

    def _create_locked(self, name: str, subnet_text: str | None, gateway_text: str | None,
                       internal: bool, labels: dict[str, str]) -> Network:
        if self.store.load(name) is not None:
            raise Conflict(f"network {name!r} already exists; `berth-runtime network rm {name}` "
                           "first or choose another name")
        existing = self.store.all()
        taken = {f"network {n.name!r}": n.subnet for n in existing}
        bridges = {n.bridge for n in existing}
        for route in ipam.host_routes():
            if not any(route == n.subnet for n in existing):
                taken.setdefault(f"a host route ({route})", route)
        if subnet_text is not None:
            subnet = ipam.parse_subnet(subnet_text)
            ipam.check_subnet_free(subnet, taken)
        else:
            subnet = ipam.choose_subnet(taken.values(), ipam.pool_subnets())
        gateway = ipam.gateway_for(subnet, gateway_text)
        network = new_network(name, subnet, gateway, internal, labels)
        while network.bridge in bridges:  # ids are random; a prefix clash is just unlucky
            network = new_network(name, subnet, gateway, internal, labels)
        try:
            bridge.ensure_bridge(network.bridge, network.gateway_interface)
            if not internal:
                bridge.enable_forwarding()
            self.store.save(network)
            self.sync_rules()
        except BaseException:
            self.store.delete(network)
            bridge.delete_link(network.bridge)
            with contextlib.suppress(BerthError):
                self.sync_rules()
            raise
        return network

    def get(self, ref: str) -> Network:
        """A network by name, id or id prefix; the default network is created on first use."""
        try:
            return self.store.find(ref)
        except NotFound:
            if ref != DEFAULT_NETWORK:
                raise
        with self.store.lock():
            existing = self.store.load(DEFAULT_NETWORK)
            return existing or self._create_locked(DEFAULT_NETWORK, None, None, False, {})

    def list(self) -> builtins.list[Network]:
        """Every network of this root, the default one included (created if missing)."""
        self.get(DEFAULT_NETWORK)
        return self.store.all()

    def attached(self, network: Network) -> dict[str, str]:
        """Owner id → address of everything holding an address on `network`."""
        book = self._book(network)
        leases = book.leases()
        if self.is_live is not None:
            leases = {a: o for a, o in leases.items() if self.is_live(o)}
        return {owner: address for address, owner in leases.items()}

    def inspect(self, network: Network) -> dict[str, Any]:
        """Docker's `network inspect` document, with the attached containers."""
        data = network.to_json()
        containers = {}
        for owner, address in sorted(self.attached(network).items()):
            endpoint = (self._sandbox(owner) or {}).get("Endpoints", {}).get(network.name, {})
            containers[owner] = {
                "Name": self.describe(owner), "MacAddress": endpoint.get("MacAddress", ""),
                "IPv4Address": f"{address}/{network.subnet.prefixlen}", "IPv6Address": "",
            }
        data["Containers"] = containers
        return data

    def remove(self, ref: str) -> Network:
        """Remove a network: refused while containers are attached (they are named)."""
        network = self.store.find(ref)
        with self.store.lock():
            users = self.attached(network)
            if users:
                names = ", ".join(sorted(self.describe(o) for o in users))
                raise Conflict(f"network {network.name!r} is in use by container(s) {names}; "
                               "remove them or `berth-runtime network disconnect` them first")
            self.dns.remove_network(network.name)
            bridge.delete_link(network.bridge)
            self.store.delete(network)
            self._book(network).destroy()
            self.sync_rules()
        return network

    # -- sandboxes ---------------------------------------------------------------------------
    def check(self, owner: str, requests: builtins.list[EndpointRequest],
              ports: builtins.list[PortSpec], group: str = "") -> None:
        """Validate a future `setup` without creating anything: networks exist, requested
        addresses are valid and free, host ports are free."""
        seen = set()
        for request in requests:
            network = self.get(request.network)
            if network.name in seen:
                raise InvalidArgument(f"network {network.name!r} is given twice")
            seen.add(network.name)
            if request.ip is not None:
                book = self._book(network)
                book._check_requested(request.ip, book.leases(), owner)
        if ports and all(self.get(r.network).internal for r in requests):
            raise InvalidArgument("ports cannot be published from a container whose networks "
                                  "are all --internal")
        self.ports.check(owner, ports, group)

    def setup(self, owner: str, name: str, requests: builtins.list[EndpointRequest],
              ports: builtins.list[PortSpec], hostname: str | None = None,
              port_group: str = "", serving: bool = True, wire: bool = True) -> dict[str, Any]:
        """Create the sandbox of `owner`: a namespace with one interface per requested network
        (address, default route via the first non-internal network), its DNS names (`name`,
        the aliases, the short id, the hostname) and its published ports. All or nothing.
        With `port_group`, the ports are shared with the group's other members and take
        connections once `serving` (ports.py). With `wire=False` the addresses, ports and the
        empty namespace are made and recorded, and `wire` adds the rest later."""
        self.teardown(owner)  # a stale sandbox of a crashed run
        networks = [self.get(r.network) for r in requests]
        if len({n.name for n in networks}) != len(networks):
            raise InvalidArgument("a network is given twice")
        ns_name = bridge.netns_name(owner)
        sandbox: dict[str, Any] = {"Id": owner, "Name": name, "Hostname": hostname or "",
                                   "Netns": ns_name, "Path": bridge.netns_path(ns_name),
                                   "Endpoints": {}, "Ports": []}
        try:
            addresses = [self._book(n).allocate(owner, r.ip, self.is_live)
                         for n, r in zip(networks, requests, strict=True)]
            primary = next((a for n, a in zip(networks, addresses, strict=True)
                            if not n.internal), None)
            if ports and primary is None:
                raise InvalidArgument("ports cannot be published from a container whose "
                                      "networks are all --internal")
            bindings = self.ports.reserve(owner, ports, str(primary), port_group,
                                          serving) if ports else []
            sandbox["Ports"] = [vars(b) for b in bindings]
            routed = False
            for network, request, address in zip(networks, requests, addresses, strict=True):
                gateway = None if network.internal or routed else network.gateway
                routed = routed or gateway is not None
                self._add_endpoint(sandbox, network, request, address, gateway)
            bridge.create_netns(ns_name, loopback_up=not requests)  # else: with eth0
            self._save_sandbox(sandbox)
            if wire:
                self.wire(owner)
        except BaseException:
            self.teardown(owner)
            self.forget(owner)
            raise
        return sandbox

    def wire(self, owner: str) -> None:
        """The second step of `setup(wire=False)`: the veths, DNS names and packet-filter rules
        of the recorded sandbox. On failure the caller tears the sandbox down."""
        sandbox = self._sandbox(owner)
        if sandbox is None:
            raise NotFound(f"{self.describe(owner)} has no network sandbox to wire")
        for index, network_name in enumerate(sandbox["Endpoints"]):
            self._attach(sandbox, self.get(network_name), loopback_up=index == 0)
        self.sync_rules()

    def connect(self, owner: str, request: EndpointRequest) -> dict[str, Any]:
        """Attach a running sandbox to one more network."""
        sandbox = self._sandbox(owner)
        if sandbox is None:
            raise NotFound(f"{self.describe(owner)} has no network namespace (is it running?)")
        network = self.get(request.network)
        if network.name in sandbox["Endpoints"]:
            raise Conflict(f"{self.describe(owner)} is already connected to {network.name!r}")
        address = self._book(network).allocate(owner, request.ip, self.is_live)
        routed = any(e.get("Routed") for e in sandbox["Endpoints"].values())
        first = not sandbox["Endpoints"]
        try:
            self._add_endpoint(sandbox, network, request, address,
                               None if network.internal or routed else network.gateway)
            self._attach(sandbox, network, loopback_up=first)
        except BaseException:
            sandbox["Endpoints"].pop(network.name, None)
            self._book(network).release(owner)
            raise
        self._save_sandbox(sandbox)
        return sandbox

    def disconnect(self, owner: str, network_ref: str) -> None:
        """Detach a sandbox from one network (its address goes back to the pool)."""
        network = self.store.find(network_ref)
        sandbox = self._sandbox(owner)
        if sandbox is not None and network.name in sandbox["Endpoints"]:
            endpoint = sandbox["Endpoints"].pop(network.name)
            self.dns.remove_entry(network.name, owner)
            bridge.delete_link(endpoint["HostVeth"])
            self._save_sandbox(sandbox)
        self._book(network).release(owner)

    def teardown(self, owner: str) -> None:
        """Undo `setup` except the address leases (idempotent): ports, DNS names, veths,
        namespace, sandbox record."""
        sandbox = self._sandbox(owner)
        if sandbox is None:
            return
        self.ports.release(owner)
        for network_name, endpoint in sandbox["Endpoints"].items():
            self.dns.remove_entry(network_name, owner)
            bridge.delete_link(endpoint["HostVeth"])
        bridge.delete_netns(sandbox["Netns"])
        (self.sandbox_dir / f"{owner}.json").unlink(missing_ok=True)
        if sandbox.get("Ports"):
            self.sync_rules()

    def forget(self, owner: str) -> None:
        """Release every address `owner` holds (it was removed)."""
        for network in self.store.all():
            self._book(network).release(owner)

    def sandbox(self, owner: str) -> dict[str, Any] | None:
        """The sandbox record of `owner` if it is wired."""
        return self._sandbox(owner)

    def set_serving(self, owner: str, serving: bool) -> bool:
        """Let `owner`'s port-group bindings take new connections or not (rules re-rendered
        when that changes anything); whether it did."""
        changed = self.ports.set_serving(owner, serving)
        if changed:
            self.sync_rules()
        return changed

    def bindings(self, owner: str) -> builtins.list[Binding]:
        return [b for b in self.ports.bindings() if b.owner == owner]

    # -- host state --------------------------------------------------------------------------
    def sync_rules(self) -> None:
        """Re-render and atomically install the nftables table from the state on disk."""
        with fsutil.locked(self.store.dir / "rules.lock"):
            networks = self.store.all()
            rules = [filtering.NetworkRules(n.bridge, str(n.subnet), n.internal)
                     for n in networks]
            ports = [filtering.PortRule(b.host_ip, b.host_port, b.protocol, b.container_ip,
                                        b.container_port) for b in self.ports.bindings()
                     if b.serving]
            filtering.apply(self.table, rules, ports)

    def ensure_rules(self) -> bool:
        """Reinstall the rules if something removed or flushed them (cheap: one in-process
        listing); returns whether they had to be reinstalled."""
        if not self.store.all() or filtering.intact(self.table):
            return False
        self.sync_rules()
        return True

    def reconcile(self) -> None:
        """After an agent restart or a host reboot: re-create missing bridges, drop sandboxes
        whose namespace is gone, reinstall the rules, restart the DNS server if needed."""
        for network in self.store.all():
            bridge.ensure_bridge(network.bridge, network.gateway_interface)
        if self.sandbox_dir.is_dir():
            for path in self.sandbox_dir.glob("*.json"):
                data = fsutil.read_json(path) or {}
                if data and not bridge.netns_exists(data.get("Netns", "")):
                    self.teardown(data["Id"])
        self.sync_rules()
        self.dns.ensure_running()

    def purge(self) -> None:
        """Remove every sandbox, network, rule and the DNS server of this root."""
        if self.sandbox_dir.is_dir():
            for path in self.sandbox_dir.glob("*.json"):
                self.teardown(path.stem)
        self.dns.stop()
        for network in self.store.all():
            bridge.delete_link(network.bridge)
            self.store.delete(network)
            self._book(network).destroy()
        filtering.remove(self.table)
        (self.store.dir / "ports.json").unlink(missing_ok=True)

    # -- internals ---------------------------------------------------------------------------
    def _book(self, network: Network) -> ipam.AddressBook:
        return ipam.AddressBook(self.store.dir / "ipam", network.name, network.subnet,
                                network.gateway)

    def _sandbox(self, owner: str) -> dict[str, Any] | None:
        return fsutil.read_json(self.sandbox_dir / f"{owner}.json")

    def _save_sandbox(self, sandbox: dict[str, Any]) -> None:
        """Atomically, without fsync: a sandbox describes namespaces and links that do not
        survive a reboot either, and `reconcile` drops records whose namespace is gone."""
        path = self.sandbox_dir / f"{sandbox['Id']}.json"
        self.sandbox_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sandbox))
        os.replace(tmp, path)

    def _add_endpoint(self, sandbox: dict[str, Any], network: Network, request: EndpointRequest,
                      address: Any, gateway: Any) -> None:
        """Record the interface `sandbox` gets on `network` (not made yet: `_attach`)."""
        used = {e["Interface"] for e in sandbox["Endpoints"].values()}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        sandbox["Endpoints"][network.name] = {
            "NetworkID": network.id, "Interface": ifname,
            "HostVeth": bridge.veth_name(sandbox["Id"], network.name),
            "IPAddress": str(address), "IPPrefixLen": network.subnet.prefixlen,
            "Gateway": str(network.gateway), "MacAddress": bridge.mac_for(address),
            "Routed": gateway is not None, "Aliases": list(request.aliases),
        }

    def _attach(self, sandbox: dict[str, Any], network: Network, loopback_up: bool) -> None:
        """Make the recorded endpoint of `sandbox` on `network`: its veth and DNS names."""
        owner, endpoint = sandbox["Id"], sandbox["Endpoints"][network.name]
        address = IPv4Interface(f"{endpoint['IPAddress']}/{endpoint['IPPrefixLen']}")
        bridge.add_veth(sandbox["Netns"], network.bridge, network.gateway_interface,
                        endpoint["HostVeth"], endpoint["Interface"], address,
                        network.gateway if endpoint["Routed"] else None,
                        endpoint["MacAddress"], loopback_up=loopback_up)
        names = [sandbox["Name"], *endpoint["Aliases"], owner[:12]]
        if sandbox.get("Hostname") and sandbox["Hostname"] not in names:
            names.append(sandbox["Hostname"])
        self.dns.set_entry(network.name, str(network.gateway), owner, endpoint["IPAddress"],
                           names)
