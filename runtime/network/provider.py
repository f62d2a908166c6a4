"""BridgeNetworks: the container manager's NetworkProvider, backed by NetworkManager.

Where a container's networking lives in its record (docker's fields, so `inspect` shows them):
- HostConfig.NetworkMode: the first network, or `none` / `host`;
- HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": ""}]}, HostConfig.PublishAllPorts;
- NetworkSettings.Networks.<name>: the request (IPAMConfig.IPv4Address, Aliases) and, while the
  container runs, what it got (IPAddress, Gateway, IPPrefixLen, MacAddress, NetworkID);
- NetworkSettings.Ports {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}]} and SandboxKey
  while it runs.

Life cycle: `configure` validates everything at create time (before anything exists); `prepare`
wires the sandbox just before the OCI runtime creates the container (addresses are leased on the
first start and kept while the container exists, so it keeps its address across restarts);
`release` (the container stopped) frees ports, DNS names, veths and the namespace; `removed`
(the container is gone) frees its addresses.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import Conflict, InvalidArgument
from runtime.network.store import DEFAULT_NETWORK
from runtime.protocol import PORT_GROUP_LABEL

if TYPE_CHECKING:
    from runtime.containers.options import RunOptions
    from runtime.containers.record import Container
    from runtime.host import Host
    from runtime.network.manager import EndpointRequest, NetworkManager
    from runtime.network.ports import PortSpec

SPECIAL_MODES = ("none", "host")


class BridgeNetworks:
    """Bridge networking for the containers of one root."""

    def __init__(self, host: Host):
        self.root = Path(host.root)
        self.containers_dir = self.root / "containers"

    @cached_property
    def manager(self) -> NetworkManager:
        from runtime.network.manager import NetworkManager

        return NetworkManager(self.root, is_live=self._is_live, describe=self._describe)

    # -- create time -------------------------------------------------------------------------
    def configure(self, options: RunOptions, config: dict[str, Any],
                  host_config: dict[str, Any]) -> dict[str, Any]:
        """Validate the network flags of `options` and fill HostConfig (NetworkMode,
        PortBindings, PublishAllPorts); returns the container's NetworkSettings. Raises before
        anything is created: unknown network, bad or taken --ip, bad or taken host port."""
        from runtime.network.manager import EndpointRequest
        from runtime.network.ports import parse_port_spec

        names = list(dict.fromkeys(options.networks)) or [DEFAULT_NETWORK]
        special = [n for n in names if n in SPECIAL_MODES]
        if special and len(names) > 1:
            raise InvalidArgument(f"--network {special[0]} cannot be combined with other networks")
        specs = [parse_port_spec(p) for p in options.publish]
        if special:
            if options.ip or options.network_aliases:
                raise InvalidArgument(f"--ip and --network-alias need a bridge network, not "
                                      f"--network {special[0]}")
            if specs or options.publish_all:
                raise InvalidArgument(f"-p/-P need a bridge network; with --network "
                                      f"{special[0]} nothing can be published")
        if options.ip and len(names) > 1:
            raise InvalidArgument("--ip applies to one network; give a single --network")
        host_config.update(NetworkMode=names[0], PublishAllPorts=bool(options.publish_all),
                           PortBindings=_port_bindings(specs))
        if special:
            return {"Networks": {}, "Ports": {}, "SandboxKey": ""}
        if options.publish_all:
            specs += [s for s in _exposed(config) if s.key not in {x.key for x in specs}]
        requests = [EndpointRequest(name, options.ip if i == 0 else None,
                                    list(options.network_aliases))
                    for i, name in enumerate(names)]
        from runtime.containers.options import parse_labels

        group = parse_labels(options.labels).get(PORT_GROUP_LABEL, "")
        self.manager.check("", requests, specs, group)
        networks = {}
        for request in requests:
            network = self.manager.get(request.network)
            networks[network.name] = _endpoint_request(network.id, request)
        return {"Networks": networks, "Ports": {}, "SandboxKey": ""}

    # -- NetworkProvider ---------------------------------------------------------------------
    def prepare(self, container: Container) -> str | None:
        """Wire the container's sandbox; the namespace path for the runtime (None: a new
        loopback-only one)."""
        mode = container.host_config.get("NetworkMode") or "none"
        if mode == "none":
            return None
        if mode == "host":
            return f"/proc/{os.getpid()}/ns/net"
        requests = self._requests(container)
        specs = self._port_specs(container)
        group = port_group(container)
        sandbox = self.manager.setup(container.id, container.name, requests, specs,
                                     container.config.get("Hostname") or None, group,
                                     serving=not container.healthcheck, wire=False)
        self._record(container, sandbox)
        return str(sandbox["Path"])

    def wire(self, container: Container) -> None:
        """Veths, DNS names and rules of the sandbox `prepare` made (while the OCI runtime
        creates the container)."""
        mode = container.host_config.get("NetworkMode") or "none"
        if mode not in SPECIAL_MODES:
            self.manager.wire(container.id)

    def attached(self, container: Container, pid: int) -> None:
        return None

    def set_serving(self, container: Container, serving: bool) -> bool:
        """A port-group member takes new connections (healthy) or not (unhealthy, stopping);
        whether that changed the rules."""
        if not port_group(container):
            return False
        return self.manager.set_serving(container.id, serving)

    def release(self, container: Container) -> None:
        """The container stopped: ports, names, veths and namespace go; addresses stay."""
        self.manager.teardown(container.id)
        settings = container.network_settings
        if settings:
            settings.update(Ports={}, SandboxKey="")
            for endpoint in (settings.get("Networks") or {}).values():
                endpoint.update(IPAddress="", Gateway="", IPPrefixLen=0, MacAddress="")

    def removed(self, container: Container) -> None:
        """The container is gone: its addresses go back to the pools."""
        self.manager.teardown(container.id)
        self.manager.forget(container.id)

    def hosts_entries(self, container: Container) -> list[str]:
        hostname = container.config.get("Hostname") or container.short_id
        return [f"{e['IPAddress']}\t{hostname} {container.name}"
                for e in (container.network_settings.get("Networks") or {}).values()
                if e.get("IPAddress")]

    def resolv_conf(self, container: Container) -> str:
        """Bridge networks: their gateways (aardvark-dns) plus the host's search options;
        host mode: the host's file; none: the host's without loopback servers."""
        try:
            host_lines = Path("/etc/resolv.conf").read_text().splitlines()
        except OSError:
            host_lines = []
        mode = container.host_config.get("NetworkMode") or "none"
        if mode == "host":
            return "\n".join(host_lines) + "\n"
        gateways = [e["Gateway"] for e in (container.network_settings.get("Networks") or {})
                    .values() if e.get("Gateway")]
        kept = [line for line in host_lines if not line.startswith("nameserver")]
        if not gateways:
            kept += [line for line in host_lines if line.startswith("nameserver")
                     and " 127." not in line and " ::1" not in line]
        return "\n".join([*(f"nameserver {g}" for g in gateways), *kept]).strip() + "\n"

    # -- connect / disconnect / rm -----------------------------------------------------------
    def connect(self, container: Container, network_ref: str, ip: str | None,
                aliases: list[str]) -> None:
        """Add `container` to a network (wired now if it runs); the caller saves the record."""
        from runtime.network.manager import EndpointRequest

        mode = container.host_config.get("NetworkMode") or ""
        if mode in SPECIAL_MODES or mode.startswith("container:"):
            raise Conflict(f"container {container.name} uses --network {mode}; it cannot join "
                           "a bridge network")
        network = self.manager.get(network_ref)
        networks = container.network_settings.setdefault("Networks", {})
        if network.name in networks:
            raise Conflict(f"container {container.name} is already connected to network "
                           f"{network.name!r}")
        request = EndpointRequest(network.name, ip, list(aliases))
        if container.running and self.manager.sandbox(container.id) is not None:
            sandbox = self.manager.connect(container.id, request)
            networks[network.name] = _endpoint_request(network.id, request)
            self._record(container, sandbox)
        else:
            self.manager.check(container.id, [request], [])
            networks[network.name] = _endpoint_request(network.id, request)

    def disconnect(self, container: Container, network_ref: str) -> None:
        """Remove `container` from a network; the caller saves the record."""
        network = self.manager.store.find(network_ref)
        networks = container.network_settings.get("Networks") or {}
        if network.name not in networks:
            raise Conflict(f"container {container.name} is not connected to network "
                           f"{network.name!r}")
        self.manager.disconnect(container.id, network.name)
        del networks[network.name]
        if container.host_config.get("NetworkMode") == network.name:
            container.host_config["NetworkMode"] = next(iter(networks), "none")

    def users_of_network(self, name: str) -> list[str]:
        """Names of the containers attached to network `name` (any state)."""
        from runtime.containers.record import ContainerStore

        return sorted(c.name for c in ContainerStore(self.root).all()
                      if name in (c.network_settings.get("Networks") or {}))

    def remove_network(self, ref: str) -> None:
        """`network rm`: refused while containers are attached, naming them."""
        network = self.manager.store.find(ref)
        users = self.users_of_network(network.name)
        if users:
            raise Conflict(f"network {network.name!r} is in use by container(s) "
                           f"{', '.join(users)}; remove them or `berth-runtime network "
                           "disconnect` them first")
        self.manager.remove(network.name)

    # -- internals ---------------------------------------------------------------------------
    def _is_live(self, owner: str) -> bool:
        return (self.containers_dir / owner).is_dir()

    def _describe(self, owner: str) -> str:
        from runtime.containers.record import ContainerStore

        container = ContainerStore(self.root).load(owner)
        return container.name if container is not None else owner[:12]

    def _requests(self, container: Container) -> list[EndpointRequest]:
        from runtime.network.manager import EndpointRequest

        networks = container.network_settings.get("Networks") or {}
        if not networks:  # a record from before networking: the default network
            networks = {DEFAULT_NETWORK: {}}
            container.network_settings["Networks"] = networks
        mode = container.host_config.get("NetworkMode")
        ordered = sorted(networks, key=lambda n: n != mode)
        return [EndpointRequest(name, ((networks[name].get("IPAMConfig") or {})
                                       .get("IPv4Address") or None),
                                list(networks[name].get("Aliases") or []))
                for name in ordered]

    def _port_specs(self, container: Container) -> list[PortSpec]:
        from runtime.network.ports import PortSpec

        specs = []
        for key, bindings in (container.host_config.get("PortBindings") or {}).items():
            port, _, protocol = key.partition("/")
            for binding in bindings or [{}]:
                specs.append(PortSpec(int(port), protocol or "tcp",
                                      binding.get("HostIp") or "",
                                      int(binding.get("HostPort") or 0)))
        if container.host_config.get("PublishAllPorts"):
            keys = {s.key for s in specs}
            specs += [s for s in _exposed(container.config) if s.key not in keys]
        return specs

    @staticmethod
    def _record(container: Container, sandbox: dict[str, Any]) -> None:
        settings = container.network_settings
        networks = settings.setdefault("Networks", {})
        for name, endpoint in sandbox["Endpoints"].items():
            entry = networks.setdefault(name, {})
            entry.update(NetworkID=endpoint["NetworkID"], IPAddress=endpoint["IPAddress"],
                         IPPrefixLen=endpoint["IPPrefixLen"], Gateway=endpoint["Gateway"],
                         MacAddress=endpoint["MacAddress"])
        ports: dict[str, list[dict[str, str]]] = {}
        for binding in sandbox["Ports"]:
            key = f"{binding['container_port']}/{binding['protocol']}"
            ports.setdefault(key, []).append({"HostIp": binding["host_ip"] or "0.0.0.0",
                                              "HostPort": str(binding["host_port"])})
        settings.update(Ports=ports, SandboxKey=sandbox["Path"])


def port_group(container: Container) -> str:
    """The port group `container` publishes its ports in ("" = none), from its label."""
    return str((container.config.get("Labels") or {}).get(PORT_GROUP_LABEL) or "")


def _endpoint_request(network_id: str, request: EndpointRequest) -> dict[str, Any]:
    return {"IPAMConfig": {"IPv4Address": request.ip} if request.ip else None,
            "Aliases": list(request.aliases), "NetworkID": network_id, "IPAddress": "",
            "Gateway": "", "IPPrefixLen": 0, "MacAddress": ""}


def _port_bindings(specs: list[PortSpec]) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        bindings.setdefault(spec.key, []).append(
            {"HostIp": spec.host_ip, "HostPort": str(spec.host_port) if spec.host_port else ""})
    return bindings


def _exposed(config: dict[str, Any]) -> list[PortSpec]:
    from runtime.network.ports import PortSpec

    specs = []
    for key in config.get("ExposedPorts") or {}:
        port, _, protocol = str(key).partition("/")
        if port.isdigit():
            specs.append(PortSpec(int(port), (protocol or "tcp").lower()))
    return specs
