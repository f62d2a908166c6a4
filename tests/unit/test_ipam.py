"""Subnet and address allocation, port specs and the rendered nftables ruleset (no root)."""

from __future__ import annotations

import multiprocessing
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from runtime.errors import Conflict, InvalidArgument
from runtime.network import filtering, ipam
from runtime.network.ports import PortSpec, parse_port_spec

SUBNET = IPv4Network("10.50.0.0/29")  # hosts .1-.6
GATEWAY = IPv4Address("10.50.0.1")


def book(tmp_path: Path) -> ipam.AddressBook:
    return ipam.AddressBook(tmp_path, "net", SUBNET, GATEWAY)


def test_pool_is_split_into_slash_24s_in_order() -> None:
    subnets = ipam.pool_subnets("10.89.0.0/22")
    assert [str(s) for s in subnets] == ["10.89.0.0/24", "10.89.1.0/24", "10.89.2.0/24",
                                         "10.89.3.0/24"]
    assert ipam.pool_subnets("10.89.0.0/26") == [IPv4Network("10.89.0.0/26")]


def test_choose_subnet_skips_overlaps_with_networks_and_routes() -> None:
    pool = ipam.pool_subnets("10.89.0.0/22")
    taken = [IPv4Network("10.89.0.0/24"), IPv4Network("10.89.1.128/25")]
    assert ipam.choose_subnet(taken, pool) == IPv4Network("10.89.2.0/24")


def test_exhausted_pool_names_the_way_out() -> None:
    pool = ipam.pool_subnets("10.89.0.0/24")
    with pytest.raises(Conflict, match="BERTH_NETWORK_POOL"):
        ipam.choose_subnet([IPv4Network("10.0.0.0/8")], pool)


@pytest.mark.parametrize("text, message", [
    ("10.1.2.3/24", "host bits"), ("10.1.0.0/31", "too small"), ("fe80::/64", "IPv4"),
    ("10.1.0.0", "too small"), ("nonsense", "not a valid"),
])
def test_malformed_subnets_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ipam.parse_subnet(text)


def test_gateway_defaults_to_first_host_and_must_be_inside() -> None:
    assert ipam.gateway_for(SUBNET, None) == GATEWAY
    assert ipam.gateway_for(SUBNET, "10.50.0.6") == IPv4Address("10.50.0.6")
    for bad in ("10.50.0.0", "10.50.0.7", "10.51.0.1"):
        with pytest.raises(InvalidArgument):
            ipam.gateway_for(SUBNET, bad)


def test_addresses_are_handed_out_in_turn_skipping_the_gateway(tmp_path: Path) -> None:
    addresses = book(tmp_path)
    assert [str(addresses.allocate(o)) for o in "abc"] == ["10.50.0.2", "10.50.0.3",
                                                           "10.50.0.4"]
    assert addresses.allocate("a") == IPv4Address("10.50.0.2")  # an owner keeps its address


def test_a_freed_address_is_the_last_to_be_reused(tmp_path: Path) -> None:
    addresses = book(tmp_path)
    for owner in "abc":
        addresses.allocate(owner)
    addresses.release("a")
    assert addresses.allocate("d") == IPv4Address("10.50.0.5")
    assert addresses.allocate("e") == IPv4Address("10.50.0.6")
    assert addresses.allocate("f") == IPv4Address("10.50.0.2")  # wrapped round
    with pytest.raises(Conflict, match="no free address"):
        addresses.allocate("g")


def test_requested_address_is_checked(tmp_path: Path) -> None:
    addresses = book(tmp_path)
    assert addresses.allocate("a", "10.50.0.5") == IPv4Address("10.50.0.5")
    with pytest.raises(Conflict, match="already in use"):
        addresses.allocate("b", "10.50.0.5")
    with pytest.raises(Conflict, match="gateway"):
        addresses.allocate("b", "10.50.0.1")
    with pytest.raises(InvalidArgument, match="outside network"):
        addresses.allocate("b", "10.50.0.7")
    assert addresses.leases() == {"10.50.0.5": "a"}


def test_leases_of_vanished_owners_are_reclaimed(tmp_path: Path) -> None:
    addresses = book(tmp_path)
    addresses.allocate("ghost", "10.50.0.2")
    assert addresses.allocate("new", "10.50.0.2", is_live=lambda owner: False) == \
        IPv4Address("10.50.0.2")


def _allocate_many(directory: str, prefix: str, count: int) -> list[str]:
    addresses = ipam.AddressBook(Path(directory), "net", IPv4Network("10.60.0.0/24"),
                                 IPv4Address("10.60.0.1"))
    return [str(addresses.allocate(f"{prefix}{i}")) for i in range(count)]


def test_concurrent_processes_never_share_an_address(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        results = pool.starmap(_allocate_many, [(str(tmp_path), p, 25) for p in "wxyz"])
    handed_out = [address for chunk in results for address in chunk]
    assert len(handed_out) == 100 and len(set(handed_out)) == 100


@pytest.mark.parametrize("spec, expected", [
    ("80", PortSpec(80)),
    ("8080:80", PortSpec(80, host_port=8080)),
    ("127.0.0.1::53/udp", PortSpec(53, "udp", "127.0.0.1", 0)),
    ("127.0.0.1:5353:53/UDP", PortSpec(53, "udp", "127.0.0.1", 5353)),
])
def test_port_specs_parse_as_docker_writes_them(spec: str, expected: PortSpec) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("0", "not a port number"), ("65536", "not a port number"), ("80/sctp", "protocol"),
    ("a:80", "host port"), ("1.2.3:80:80", "not an IPv4 address"),
])
def test_bad_port_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_port_spec(spec)


def test_ruleset_isolates_bridges_and_masquerades_only_routed_networks() -> None:
    script = filtering.render(
        "berth_test",
        [filtering.NetworkRules("bt-a", "10.1.0.0/24", False),
         filtering.NetworkRules("bt-b", "10.2.0.0/24", True)],
        [filtering.PortRule("127.0.0.1", 8080, "tcp", "10.1.0.2", 80),
         filtering.PortRule("", 5353, "udp", "10.1.0.2", 53)],
    )
    assert script.startswith("table inet berth_test {}\ndelete table inet berth_test\n")
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 10.1.0.2:80" in script
    assert "\n    udp dport 5353 dnat ip to 10.1.0.2:53" in script
    assert "ip saddr 10.1.0.0/24 ip daddr != 10.1.0.0/24 masquerade" in script
    assert "ip saddr 10.2.0.0/24 ip daddr" not in script  # internal: never NATed out
    assert 'iifname "bt-a" oifname { "bt-b" } drop' in script
    assert 'oifname { "bt-b" } iifname != { "bt-b" } drop' in script


def test_empty_state_removes_the_table() -> None:
    assert filtering.render("berth_x", [], []) == \
        "table inet berth_x {}\ndelete table inet berth_x\n"
    assert filtering.table_name(Path("/var/lib/berth")) == "berth"
    assert filtering.table_name(Path("/tmp/other")).startswith("berth_")
