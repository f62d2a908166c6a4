"""Bridge networks, sandboxes, DNS, published ports and isolation, through NetworkManager
directly (real namespaces, bridges, nftables and aardvark-dns; traffic only between namespaces
these tests create and on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_helpers import echo_server, lookup, talk

from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.network import EndpointRequest, NetworkManager, PortSpec, bridge, filtering

pytestmark = pytest.mark.root

OWNER_A, OWNER_B, OWNER_C = ("a" * 64, "b" * 64, "c" * 64)


OWNERS = (OWNER_A, OWNER_B, OWNER_C)


def _leftovers(manager: NetworkManager, bridges: set[str], network_names: set[str]) -> list[str]:
    """What this test's root left on the host. Only its own bridges, veths and namespaces
    count: other sessions and a production root may run containers on this machine meanwhile."""
    veths = {bridge.veth_name(owner, name) for owner in OWNERS for name in network_names}
    namespaces = {bridge.netns_name(owner) for owner in OWNERS}
    found = [name for name in bridge.links_with_prefix("bt-", "vb")
             if name in bridges or name in veths]
    found += [ns for ns in os.listdir(bridge.NETNS_DIR) if ns in namespaces] \
        if os.path.isdir(bridge.NETNS_DIR) else []
    if filtering.installed(manager.table):
        found.append(f"nft table {manager.table}")
    if manager.dns.pid() is not None:
        found.append("aardvark-dns")
    return found


@pytest.fixture
def networks(berth_root: Path) -> Iterator[NetworkManager]:
    """A NetworkManager on a fresh root; after the test everything is purged and the host is
    checked for leftovers (links, namespaces, rules, the DNS server)."""
    manager = NetworkManager(berth_root)
    yield manager
    bridges = {n.bridge for n in manager.store.all()}
    names = {n.name for n in manager.store.all()}
    manager.purge()
    assert _leftovers(manager, bridges, names) == []


def _setup(manager: NetworkManager, owner: str, name: str, *requests: EndpointRequest,
           ports: list[PortSpec] | None = None) -> dict:
    return manager.setup(owner, name, list(requests), ports or [])


def _host_address() -> str:
    """A non-loopback address of the host (the one its default route uses)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            if not route["dst_len"] and route.get_attr("RTA_OIF"):
                index = route.get_attr("RTA_OIF")
                return ipr.get_addr(family=2, index=index)[0].get_attr("IFA_ADDRESS")
    pytest.fail("the host has no default route to take an address from")


# -- networks ----------------------------------------------------------------------------------
def test_create_network_makes_bridge_with_gateway(networks: NetworkManager) -> None:
    network = networks.create("front", subnet="10.213.7.0/24", labels={"tier": "web"})
    assert str(network.gateway) == "10.213.7.1"
    assert bridge.link_exists(network.bridge)
    data = networks.inspect(networks.get("front"))
    assert data["IPAM"]["Config"] == [{"Subnet": "10.213.7.0/24", "Gateway": "10.213.7.1"}]
    assert data["Labels"] == {"tier": "web"} and data["Containers"] == {}


def test_default_network_is_created_on_first_use(networks: NetworkManager) -> None:
    assert [n.name for n in networks.list()] == ["berth"]
    assert bridge.link_exists(networks.get("berth").bridge)


def test_pool_subnets_do_not_overlap(networks: NetworkManager,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_NETWORK_POOL", "10.214.0.0/22")
    subnets = [networks.create(f"n{i}").subnet for i in range(3)]
    assert len(set(subnets)) == 3
    assert not any(a.overlaps(b) for a in subnets for b in subnets if a is not b)


def test_overlapping_subnet_is_refused_and_creates_nothing(networks: NetworkManager) -> None:
    networks.create("one", subnet="10.215.0.0/16")
    links_before = bridge.links_with_prefix("bt-")
    with pytest.raises(Conflict, match="overlaps 10.215.0.0/16 of network 'one'"):
        networks.create("two", subnet="10.215.3.0/24")
    assert bridge.links_with_prefix("bt-") == links_before
    assert [n.name for n in networks.store.all()] == ["one"]


def test_subnet_overlapping_a_host_route_is_refused(networks: NetworkManager) -> None:
    host = _host_address()
    with pytest.raises(Conflict, match="host route"):
        networks.create("clash", subnet=f"{host.rsplit('.', 1)[0]}.0/24")


@pytest.mark.parametrize("subnet, gateway, message", [
    ("10.216.0.1/24", None, "host bits"),
    ("banana", None, "not a valid IPv4 subnet"),
    ("10.216.0.0/24", "10.217.0.1", "not a host address of subnet"),
    (None, "10.216.0.1", "--gateway needs --subnet"),
])
def test_bad_network_input_is_refused(networks: NetworkManager, subnet: str | None,
                                      gateway: str | None, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        networks.create("bad", subnet=subnet, gateway=gateway)
    assert networks.store.all() == []


def test_network_name_taken_or_reserved_is_refused(networks: NetworkManager) -> None:
    networks.create("dup", subnet="10.218.0.0/24")
    with pytest.raises(Conflict, match="already exists"):
        networks.create("dup")
    with pytest.raises(InvalidArgument, match="reserved"):
        networks.create("host")


def test_network_rm_is_refused_while_attached(networks: NetworkManager) -> None:
    networks.create("busy", subnet="10.219.0.0/24")
    _setup(networks, OWNER_A, "alpha", EndpointRequest("busy"))
    with pytest.raises(Conflict, match="in use by container"):
        networks.remove("busy")
    networks.teardown(OWNER_A)
    networks.forget(OWNER_A)
    network = networks.remove("busy")
    assert not bridge.link_exists(network.bridge)
    with pytest.raises(NotFound):
        networks.get("busy")


# -- sandboxes ---------------------------------------------------------------------------------
def test_two_sandboxes_on_one_network_talk_by_name_tcp_and_udp(
        networks: NetworkManager) -> None:
    net = networks.create("app", subnet="10.220.0.0/24")
    server = _setup(networks, OWNER_A, "db", EndpointRequest("app", aliases=["database"]))
    client = _setup(networks, OWNER_B, "web", EndpointRequest("app"))
    gateway = str(net.gateway)
    address = lookup(client["Path"], "db", gateway)
    assert address == server["Endpoints"]["app"]["IPAddress"]
    assert lookup(client["Path"], "database", gateway) == address
    with echo_server(server["Path"], 7000):
        assert talk(client["Path"], address, 7000, "tcp").startswith("tcp:hello")
        assert talk(client["Path"], address, 7000, "udp") == "udp:hello"


def test_name_follows_a_recreated_sandbox(networks: NetworkManager) -> None:
    net = networks.create("app", subnet="10.221.0.0/24")
    first = _setup(networks, OWNER_A, "api", EndpointRequest("app"))
    client = _setup(networks, OWNER_B, "web", EndpointRequest("app"))
    old = first["Endpoints"]["app"]["IPAddress"]
    assert lookup(client["Path"], "api", str(net.gateway)) == old
    networks.teardown(OWNER_A)
    networks.forget(OWNER_A)
    second = _setup(networks, OWNER_C, "api", EndpointRequest("app"))
    new = second["Endpoints"]["app"]["IPAddress"]
    assert new != old
    assert lookup(client["Path"], "api", str(net.gateway), expect=new) == new


def test_sandboxes_on_two_networks_cannot_reach_or_resolve_each_other(
        networks: NetworkManager) -> None:
    networks.create("red", subnet="10.222.1.0/24")
    blue = networks.create("blue", subnet="10.222.2.0/24")
    red_box = _setup(networks, OWNER_A, "redbox", EndpointRequest("red"))
    blue_box = _setup(networks, OWNER_B, "bluebox", EndpointRequest("blue"))
    assert lookup(blue_box["Path"], "redbox", str(blue.gateway), expect=None, attempts=3) is None
    with echo_server(red_box["Path"], 7001):
        red_address = red_box["Endpoints"]["red"]["IPAddress"]
        assert talk(blue_box["Path"], red_address, 7001, "tcp").startswith("error")
        assert talk(blue_box["Path"], red_address, 7001, "udp").startswith("error")
        assert talk(None, red_address, 7001, "tcp").startswith("tcp:hello")  # host reaches it


def test_internal_network_has_no_way_out(networks: NetworkManager) -> None:
    networks.create("vault", subnet="10.223.1.0/24", internal=True)
    networks.create("open", subnet="10.223.2.0/24")
    inside = _setup(networks, OWNER_A, "secret", EndpointRequest("vault"))
    peer = _setup(networks, OWNER_B, "peer", EndpointRequest("vault"))
    outside = _setup(networks, OWNER_C, "other", EndpointRequest("open"))
    with echo_server(outside["Path"], 7002), echo_server(peer["Path"], 7002):
        outside_address = outside["Endpoints"]["open"]["IPAddress"]
        assert "unreachable" in talk(inside["Path"], outside_address, 7002).lower()
        assert "unreachable" in talk(inside["Path"], _host_address(), 7002).lower()
        peer_address = peer["Endpoints"]["vault"]["IPAddress"]
        assert talk(inside["Path"], peer_address, 7002).startswith("tcp:hello")
    with pytest.raises(InvalidArgument, match="internal"):
        networks.check(OWNER_A, [EndpointRequest("vault")], [PortSpec(80)])


def test_requested_address_is_honoured_and_validated(networks: NetworkManager) -> None:
    networks.create("fixed", subnet="10.224.0.0/24")
    box = _setup(networks, OWNER_A, "pinned", EndpointRequest("fixed", ip="10.224.0.50"))
    assert box["Endpoints"]["fixed"]["IPAddress"] == "10.224.0.50"
    with pytest.raises(Conflict, match="already in use"):
        _setup(networks, OWNER_B, "thief", EndpointRequest("fixed", ip="10.224.0.50"))
    with pytest.raises(InvalidArgument, match="outside network"):
        _setup(networks, OWNER_B, "lost", EndpointRequest("fixed", ip="10.99.0.5"))
    with pytest.raises(Conflict, match="gateway"):
        _setup(networks, OWNER_B, "gw", EndpointRequest("fixed", ip="10.224.0.1"))
    assert networks.sandbox(OWNER_B) is None
    assert set(networks.attached(networks.get("fixed"))) == {OWNER_A}


def test_connect_and_disconnect_a_running_sandbox(networks: NetworkManager) -> None:
    networks.create("one", subnet="10.225.1.0/24")
    two = networks.create("two", subnet="10.225.2.0/24")
    box = _setup(networks, OWNER_A, "roamer", EndpointRequest("one"))
    other = _setup(networks, OWNER_B, "resident", EndpointRequest("two"))
    networks.connect(OWNER_A, EndpointRequest("two", aliases=["wanderer"]))
    box = networks.sandbox(OWNER_A)
    assert box is not None and box["Endpoints"]["two"]["Interface"] == "eth1"
    address = box["Endpoints"]["two"]["IPAddress"]
    assert lookup(other["Path"], "wanderer", str(two.gateway)) == address
    with echo_server(box["Path"], 7003):
        assert talk(other["Path"], address, 7003).startswith("tcp:hello")
    networks.disconnect(OWNER_A, "two")
    assert lookup(other["Path"], "roamer", str(two.gateway), expect=None) is None
    assert OWNER_A not in networks.attached(two)


# -- published ports ---------------------------------------------------------------------------
def test_published_port_answers_on_loopback_host_address_and_from_peers(
        networks: NetworkManager) -> None:
    app = networks.create("pub", subnet="10.226.1.0/24")
    networks.create("elsewhere", subnet="10.226.2.0/24")
    server = _setup(networks, OWNER_A, "srv", EndpointRequest("pub"),
                    ports=[PortSpec(7004, "tcp", host_port=0), PortSpec(7004, "udp")])
    tcp_port, udp_port = (b["host_port"] for b in server["Ports"])
    neighbour = _setup(networks, OWNER_B, "neighbour", EndpointRequest("pub"))
    stranger = _setup(networks, OWNER_C, "stranger", EndpointRequest("elsewhere"))
    with echo_server(server["Path"], 7004):
        assert talk(None, "127.0.0.1", tcp_port, "tcp").startswith("tcp:hello")
        assert talk(None, "127.0.0.1", udp_port, "udp") == "udp:hello"
        assert talk(None, _host_address(), tcp_port, "tcp").startswith("tcp:hello")
        # hairpin: a peer on the same bridge through the host's addresses
        assert talk(neighbour["Path"], str(app.gateway), tcp_port).startswith("tcp:hello")
        assert talk(neighbour["Path"], _host_address(), udp_port, "udp") == "udp:hello"
        # a container of another network reaches it only through the published port
        assert talk(stranger["Path"], _host_address(), tcp_port).startswith("tcp:hello")
    networks.teardown(OWNER_A)
    assert talk(None, "127.0.0.1", tcp_port).startswith("error")
    assert networks.ports.bindings() == []


def test_published_port_on_one_host_address_only(networks: NetworkManager) -> None:
    networks.create("pub", subnet="10.227.0.0/24")
    server = _setup(networks, OWNER_A, "srv", EndpointRequest("pub"),
                    ports=[PortSpec(7005, host_ip="127.0.0.1")])
    port = server["Ports"][0]["host_port"]
    with echo_server(server["Path"], 7005):
        assert talk(None, "127.0.0.1", port).startswith("tcp:hello")
        assert talk(None, _host_address(), port).startswith("error")


def test_port_taken_on_the_host_is_refused_before_anything_is_created(
        networks: NetworkManager) -> None:
    networks.create("pub", subnet="10.228.0.0/24")
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        spec = PortSpec(80, host_port=taken)
        with pytest.raises(Conflict, match=f"{taken}/tcp is already in use"):
            networks.check(OWNER_A, [EndpointRequest("pub")], [spec])
        with pytest.raises(Conflict, match=f"{taken}/tcp is already in use"):
            _setup(networks, OWNER_A, "srv", EndpointRequest("pub"), ports=[spec])
    assert networks.sandbox(OWNER_A) is None
    assert networks.attached(networks.get("pub")) == {}
    assert bridge.veth_name(OWNER_A, "pub") not in bridge.links_with_prefix("vb")
    assert not os.path.exists(bridge.netns_path(bridge.netns_name(OWNER_A)))


def test_port_published_twice_is_refused(networks: NetworkManager) -> None:
    networks.create("pub", subnet="10.229.0.0/24")
    first = _setup(networks, OWNER_A, "one", EndpointRequest("pub"), ports=[PortSpec(80)])
    port = first["Ports"][0]["host_port"]
    with pytest.raises(Conflict, match="already published by container"):
        _setup(networks, OWNER_B, "two", EndpointRequest("pub"),
               ports=[PortSpec(81, host_port=port)])
    # the same number over UDP is a different port
    _setup(networks, OWNER_B, "two", EndpointRequest("pub"),
           ports=[PortSpec(81, "udp", host_port=port)])


# -- host state --------------------------------------------------------------------------------
def test_reconcile_reinstalls_flushed_rules_and_missing_bridges(
        networks: NetworkManager) -> None:
    net = networks.create("pub", subnet="10.230.0.0/24")
    server = _setup(networks, OWNER_A, "srv", EndpointRequest("pub"), ports=[PortSpec(7006)])
    port = server["Ports"][0]["host_port"]
    filtering.remove(networks.table)
    with echo_server(server["Path"], 7006):
        assert talk(None, "127.0.0.1", port).startswith("error")
        NetworkManager(networks.root).reconcile()  # a restarted agent
        assert talk(None, "127.0.0.1", port).startswith("tcp:hello")
    networks.teardown(OWNER_A)
    bridge.delete_link(net.bridge)
    NetworkManager(networks.root).reconcile()
    assert bridge.link_exists(net.bridge)


def test_teardown_and_network_removal_leave_nothing(networks: NetworkManager) -> None:
    net = networks.create("tmp", subnet="10.231.0.0/24")
    box = _setup(networks, OWNER_A, "gone", EndpointRequest("tmp"), ports=[PortSpec(80)])
    veth = box["Endpoints"]["tmp"]["HostVeth"]
    assert networks.dns.pid() is not None
    networks.teardown(OWNER_A)
    networks.forget(OWNER_A)
    assert not bridge.link_exists(veth)
    assert not os.path.exists(box["Path"])
    assert networks.dns.pid() is None
    networks.remove("tmp")
    assert not bridge.link_exists(net.bridge)
    assert not filtering.installed(networks.table)
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert net.bridge not in rules


def test_the_bridge_keeps_its_mac_while_containers_come_and_go(networks):
    """Left to itself a bridge takes its lowest port's MAC, so the gateway's MAC would change
    under the containers' neighbour caches; Berth's bridges have their own."""
    network = networks.create("steady", subnet="10.91.7.0/24")
    sysfs = Path("/sys/class/net") / network.bridge
    assert (sysfs / "addr_assign_type").read_text().strip() == "3"  # NET_ADDR_SET
    mac = (sysfs / "address").read_text()
    for owner in OWNERS:
        _setup(networks, owner, f"box-{owner[0]}", EndpointRequest("steady"))
    networks.teardown(OWNER_A)
    assert (sysfs / "address").read_text() == mac
    sandbox = networks.sandbox(OWNER_B)
    inside = subprocess.run(["nsenter", f"--net={sandbox['Path']}", "ip", "-o", "link", "show",
                             "eth0"], capture_output=True, text=True)
    assert inside.returncode == 0
    assert f"link/ether {sandbox['Endpoints']['steady']['MacAddress']} " in inside.stdout
    for owner in OWNERS:
        networks.teardown(owner)
        networks.forget(owner)
