"""Port groups: replicas of one service share a published host port, and the nftables rules
spread new connections over the members that are serving (runtime/network/ports.py,
filtering.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import Conflict
from runtime.network import filtering
from runtime.network.ports import PortSpec, PortTable


def _free_high_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_members_of_one_group_share_a_host_port(tmp_path: Path) -> None:
    table = PortTable(tmp_path)
    port = _free_high_port()
    spec = PortSpec(80, "tcp", "", port)
    table.reserve("replica-a", [spec], "10.1.0.2", group="shop_web")
    table.reserve("replica-b", [spec], "10.1.0.3", group="shop_web", serving=False)
    bindings = {b.owner: b for b in table.bindings()}
    assert bindings["replica-a"].serving and not bindings["replica-b"].serving
    assert bindings["replica-a"].host_port == bindings["replica-b"].host_port == port


def test_another_group_or_a_plain_container_cannot_take_a_group_port(tmp_path: Path) -> None:
    table = PortTable(tmp_path)
    spec = PortSpec(80, "tcp", "", _free_high_port())
    table.reserve("replica-a", [spec], "10.1.0.2", group="shop_web")
    with pytest.raises(Conflict):
        table.reserve("other", [spec], "10.1.0.9", group="blog_web")
    with pytest.raises(Conflict):
        table.check("plain", [spec])


def test_set_serving_changes_only_group_bindings(tmp_path: Path) -> None:
    table = PortTable(tmp_path)
    table.reserve("plain", [PortSpec(80, "tcp", "", _free_high_port())], "10.1.0.4")
    table.reserve("member", [PortSpec(80, "tcp", "", _free_high_port())], "10.1.0.5",
                  group="g", serving=False)
    assert not table.set_serving("plain", False)
    assert table.set_serving("member", True)
    assert not table.set_serving("member", True)
    assert all(b.serving for b in table.bindings())


def test_a_group_renders_one_round_robin_rule() -> None:
    rules = [filtering.PortRule("", 8080, "tcp", "10.1.0.2", 80),
             filtering.PortRule("", 8080, "tcp", "10.1.0.3", 80),
             filtering.PortRule("", 9090, "tcp", "10.1.0.7", 90)]
    script = filtering.render("berth_test", [filtering.NetworkRules("bt-x", "10.1.0.0/24",
                                                                     False)], rules)
    assert ("tcp dport 8080 dnat ip to numgen inc mod 2 map "
            "{ 0 : 10.1.0.2 . 80, 1 : 10.1.0.3 . 80 }") in script
    assert "tcp dport 9090 dnat ip to 10.1.0.7:90" in script


CONNTRACK_LINES = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=41000 dport=8081 \
src=10.89.3.15 dst=10.89.3.1 sport=8080 dport=41000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 118 FIN_WAIT src=127.0.0.1 dst=127.0.0.1 sport=41002 dport=8081 \
src=10.89.3.15 dst=10.89.3.1 sport=8080 dport=41002 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 100 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=41001 dport=8081 \
src=10.89.3.15 dst=10.89.3.1 sport=8080 dport=41001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=41003 dport=8081 \
src=10.89.3.16 dst=10.89.3.1 sport=8080 dport=41003 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.89.3.15 dst=1.1.1.1 sport=5000 dport=443 \
src=1.1.1.1 dst=10.89.3.15 sport=443 dport=5000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 20 src=127.0.0.1 dst=127.0.0.1 sport=53000 dport=5353 \
src=10.89.3.15 dst=10.89.3.1 sport=5353 dport=53000 mark=0 zone=0 use=2
"""


def test_open_connections_counts_unclosed_tcp_to_the_dnat_target(tmp_path: Path) -> None:
    """A leaving member drains its connections: those whose reply comes from its address and
    are not closed (TIME_WAIT is closed; its own outbound connections and UDP do not count)."""
    table = tmp_path / "nf_conntrack"
    table.write_text(CONNTRACK_LINES)
    assert filtering.open_connections({"10.89.3.15"}, table) == 2
    assert filtering.open_connections({"10.89.3.15", "10.89.3.16"}, table) == 3
    assert filtering.open_connections({"10.89.3.17"}, table) == 0
    assert filtering.open_connections(set(), table) == 0
    assert filtering.open_connections({"10.89.3.15"}, tmp_path / "missing") == 0


@pytest.fixture
def conntrack_active() -> Iterator[None]:
    """The kernel tracks connections only while some rule needs it (Berth's port-group tables
    do): a table of this test's own makes it track, whatever ran before."""
    table = f"berth-test-ct-{os.getpid()}"
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
        f"table inet {table} {{ chain out {{ type filter hook output priority 0; "
        "ct state established accept; }; }\n"))
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)


def test_open_connections_sees_a_real_established_connection(conntrack_active: None) -> None:
    """Against the kernel's table: a loopback connection is counted while it is open."""
    import socket

    with socket.create_server(("127.0.0.2", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        try:
            assert filtering.open_connections({"127.0.0.2"}) >= 1
        finally:
            accepted.close()
            client.close()
