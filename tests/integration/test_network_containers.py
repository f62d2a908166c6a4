"""Container networking end to end: `berth-runtime run --network/-p/--ip/--network-alias`,
`network …` and `port`, each call a separate process, with real runc containers.

TCP between containers uses busybox nc inside them. Debian's busybox nc has no UDP mode, so the
UDP checks run the small Python echo server/client of network_helpers inside the containers'
network namespaces (their SandboxKey). All traffic stays on this machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from network_helpers import echo_server, lookup, talk

from runtime.network import bridge, filtering

pytestmark = pytest.mark.root

SERVE_TCP = "while true; do echo pong-$(hostname) | nc -l -p 8000; done"


@pytest.fixture
def busybox(cli, berth_root: Path):
    """The busybox image; after the test, the root is purged and nothing of its networking
    may remain (links, namespaces, nft table, DNS server)."""
    cli("image", "bootstrap", "busybox")
    yield
    from runtime.host import Host

    host = Host(berth_root)
    manager = host.networks.manager
    bridges = {n.bridge for n in manager.store.all()}
    sandboxes = [p.stem for p in manager.sandbox_dir.glob("*.json")] \
        if manager.sandbox_dir.is_dir() else []
    host.purge()
    links = set(bridge.links_with_prefix("bt-", "vb"))
    assert not links & bridges
    assert not [s for s in sandboxes if bridge.netns_exists(bridge.netns_name(s))]
    assert not filtering.installed(manager.table)
    assert manager.dns.pid() is None


def inspect(cli, name: str) -> dict:
    return json.loads(cli("inspect", name).stdout)[0]


def address(cli, name: str, network: str) -> str:
    return inspect(cli, name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def sh(cli, name: str, script: str, check: bool = False):
    return cli("exec", name, "sh", "-c", script, check=check, timeout=60)


def nc_from(cli, name: str, target: str, port: int) -> str:
    """What `nc TARGET PORT` in container `name` reads (empty when it cannot connect)."""
    return sh(cli, name, f"echo ping | nc -w 2 {target} {port}").stdout.strip()


def test_two_containers_on_one_network_talk_by_name_and_alias(cli, busybox) -> None:
    cli("network", "create", "app")
    cli("run", "-d", "--name", "server", "--network", "app", "--network-alias", "db",
        "--hostname", "srv", "busybox", "sh", "-c", SERVE_TCP)
    cli("run", "-d", "--name", "client", "--network", "app", "busybox", "sleep", "60")
    assert nc_from(cli, "client", "server", 8000) == "pong-srv"
    assert nc_from(cli, "client", "db", 8000) == "pong-srv"
    resolv = sh(cli, "client", "cat /etc/resolv.conf", check=True).stdout
    gateway = inspect(cli, "client")["NetworkSettings"]["Networks"]["app"]["Gateway"]
    assert f"nameserver {gateway}" in resolv
    # UDP, by the address the client's resolver gives for the server's name
    server_ns = inspect(cli, "server")["NetworkSettings"]["SandboxKey"]
    client_ns = inspect(cli, "client")["NetworkSettings"]["SandboxKey"]
    resolved = lookup(client_ns, "server", gateway)
    assert resolved == address(cli, "server", "app")
    with echo_server(server_ns, 9000):
        assert talk(client_ns, resolved, 9000, "udp") == "udp:hello"


def test_name_follows_a_recreated_container(cli, busybox) -> None:
    cli("network", "create", "app")
    cli("run", "-d", "--name", "api", "--network", "app", "--hostname", "one", "busybox",
        "sh", "-c", SERVE_TCP)
    cli("run", "-d", "--name", "client", "--network", "app", "busybox", "sleep", "60")
    old = address(cli, "api", "app")
    assert nc_from(cli, "client", "api", 8000) == "pong-one"
    cli("rm", "-f", "api")
    cli("run", "-d", "--name", "api", "--network", "app", "--hostname", "two", "busybox",
        "sh", "-c", SERVE_TCP)
    assert address(cli, "api", "app") != old
    # the DNS server reloads asynchronously (SIGHUP); allow it a few tries
    answers = [nc_from(cli, "client", "api", 8000) for _ in range(1)]
    while answers[-1] != "pong-two" and len(answers) < 20:
        answers.append(nc_from(cli, "client", "api", 8000))
    assert answers[-1] == "pong-two"


def test_containers_on_two_networks_cannot_reach_each_other(cli, busybox) -> None:
    cli("network", "create", "red")
    cli("network", "create", "blue")
    cli("run", "-d", "--name", "redbox", "--network", "red", "busybox", "sh", "-c", SERVE_TCP)
    cli("run", "-d", "--name", "bluebox", "--network", "blue", "busybox", "sleep", "60")
    assert sh(cli, "bluebox", "nslookup redbox").returncode != 0
    assert nc_from(cli, "bluebox", address(cli, "redbox", "red"), 8000) == ""
    # the same container joined to both networks reaches it
    cli("network", "connect", "red", "bluebox")
    assert nc_from(cli, "bluebox", "redbox", 8000).startswith("pong-")
    cli("network", "disconnect", "red", "bluebox")
    assert nc_from(cli, "bluebox", address(cli, "redbox", "red"), 8000) == ""


def test_published_port_answers_on_loopback_and_from_another_network(cli, busybox) -> None:
    cli("network", "create", "front")
    cli("network", "create", "back")
    cli("run", "-d", "--name", "web", "--network", "front", "--hostname", "web",
        "-p", "127.0.0.1::8000", "-p", "8000", "busybox", "sh", "-c", SERVE_TCP)
    cli("run", "-d", "--name", "peer", "--network", "front", "busybox", "sleep", "60")
    cli("run", "-d", "--name", "outsider", "--network", "back", "busybox", "sleep", "60")
    lines = cli("port", "web").stdout.splitlines()
    loopback = next(line for line in lines if "127.0.0.1:" in line)
    anywhere = next(line for line in lines if "0.0.0.0:" in line)
    local_port = int(loopback.rsplit(":", 1)[1])
    any_port = int(anywhere.rsplit(":", 1)[1])
    assert talk(None, "127.0.0.1", local_port).startswith("pong-web")
    assert talk(None, "127.0.0.1", any_port).startswith("pong-web")
    host_ip = _host_address()
    assert nc_from(cli, "outsider", host_ip, any_port) == "pong-web"  # another network
    gateway = inspect(cli, "peer")["NetworkSettings"]["Networks"]["front"]["Gateway"]
    assert nc_from(cli, "peer", gateway, any_port) == "pong-web"  # hairpin
    ports = inspect(cli, "web")["NetworkSettings"]["Ports"]["8000/tcp"]
    assert {p["HostIp"] for p in ports} == {"127.0.0.1", "0.0.0.0"}
    cli("stop", "-t", "0", "web")
    assert talk(None, "127.0.0.1", local_port).startswith("error")  # freed on stop


def test_published_udp_port(cli, busybox) -> None:
    cli("run", "-d", "--name", "dns", "-p", "9001/udp", "busybox", "sleep", "60")
    port = int(cli("port", "dns", "9001/udp").stdout.strip().rsplit(":", 1)[1])
    with echo_server(inspect(cli, "dns")["NetworkSettings"]["SandboxKey"], 9001):
        assert talk(None, "127.0.0.1", port, "udp") == "udp:hello"


def test_port_conflict_is_a_clear_error_before_anything_is_created(cli, busybox,
                                                                    berth_root) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = cli("run", "-d", "--name", "clash", "-p", f"{taken}:80", "busybox", "sleep",
                     "60", check=False)
    assert result.returncode == 125
    assert f"host port 0.0.0.0:{taken}/tcp is already in use" in result.stderr
    assert cli("ps", "-a", "-q").stdout == ""
    assert not [p for p in (berth_root / "containers").glob("*") if not p.name.startswith(".")]
    cli("run", "-d", "--name", "first", "-p", "80", "busybox", "sleep", "60")
    published = cli("port", "first", "80").stdout.strip().rsplit(":", 1)[1]
    second = cli("run", "-d", "--name", "second", "-p", f"{published}:81", "busybox", "sleep",
                 "60", check=False)
    assert second.returncode == 125 and "already published by container" in second.stderr
    assert len(cli("ps", "-a", "-q").stdout.split()) == 1


@pytest.mark.parametrize("flags, message", [
    (["-p", "70000"], "not a port number"),
    (["-p", "80/sctp"], "protocol 'sctp'"),
    (["--network", "nowhere"], "no such network"),
    (["--network", "app", "--ip", "10.1.2.3"], "outside network 'app'"),
    (["--network", "none", "-p", "80"], "need a bridge network"),
])
def test_bad_network_flags_create_nothing(cli, busybox, flags, message) -> None:
    cli("network", "create", "app", "--subnet", "10.241.0.0/24")
    result = cli("run", "-d", *flags, "busybox", "true", check=False)
    assert result.returncode == 125 and message in result.stderr
    assert cli("ps", "-a", "-q").stdout == ""


def test_concurrent_runs_never_share_an_address(cli, busybox) -> None:
    cli("network", "create", "busy", "--subnet", "10.242.0.0/24")
    names = [f"c{i}" for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda n: cli("run", "-d", "--name", n, "--network", "busy", "busybox",
                                    "sleep", "60", timeout=120), names))
    addresses = [address(cli, name, "busy") for name in names]
    assert len(set(addresses)) == len(names)
    data = json.loads(cli("network", "inspect", "busy").stdout)[0]
    assert sorted(c["Name"] for c in data["Containers"].values()) == names


def test_requested_ip_and_address_release_on_removal(cli, busybox) -> None:
    cli("network", "create", "fixed", "--subnet", "10.243.0.0/24")
    cli("run", "-d", "--name", "pinned", "--network", "fixed", "--ip", "10.243.0.77",
        "busybox", "sleep", "60")
    assert address(cli, "pinned", "fixed") == "10.243.0.77"
    assert "inet 10.243.0.77/24" in sh(cli, "pinned", "ip -o addr show eth0").stdout
    taken = cli("run", "-d", "--network", "fixed", "--ip", "10.243.0.77", "busybox", "true",
                check=False)
    assert taken.returncode == 125 and "already in use" in taken.stderr
    cli("restart", "-t", "0", "pinned")
    assert address(cli, "pinned", "fixed") == "10.243.0.77"
    cli("rm", "-f", "pinned")
    cli("run", "-d", "--name", "heir", "--network", "fixed", "--ip", "10.243.0.77", "busybox",
        "sleep", "60")


def test_internal_network_has_no_way_out(cli, busybox) -> None:
    cli("network", "create", "vault", "--internal")
    cli("network", "create", "open")
    cli("run", "-d", "--name", "target", "--network", "open", "busybox", "sh", "-c",
        SERVE_TCP)
    cli("run", "-d", "--name", "inside", "--network", "vault", "busybox", "sh", "-c",
        SERVE_TCP)
    cli("run", "-d", "--name", "neighbour", "--network", "vault", "busybox", "sleep", "60")
    assert "default" not in sh(cli, "inside", "ip route").stdout
    assert nc_from(cli, "inside", address(cli, "target", "open"), 8000) == ""
    assert nc_from(cli, "inside", _host_address(), 22) == ""
    assert nc_from(cli, "neighbour", "inside", 8000).startswith("pong-")


def test_network_rm_is_refused_while_containers_are_attached(cli, busybox) -> None:
    cli("network", "create", "shared")
    cli("create", "--name", "idle", "--network", "shared", "busybox", "true")
    cli("run", "-d", "--name", "live", "--network", "shared", "busybox", "sleep", "60")
    result = cli("network", "rm", "shared", check=False)
    assert result.returncode != 0 and "idle, live" in result.stderr
    cli("rm", "-f", "idle", "live")
    cli("network", "rm", "shared")
    assert "shared" not in cli("network", "ls", "-q").stdout.split()


def test_network_none_and_host_modes(cli, busybox) -> None:
    cli("run", "-d", "--name", "lonely", "--network", "none", "busybox", "sleep", "60")
    assert sh(cli, "lonely", "ip -o link | wc -l").stdout.strip() == "1"
    cli("run", "-d", "--name", "hosty", "--network", "host", "busybox", "sleep", "60")
    links = sh(cli, "hosty", "ip -o link").stdout
    own = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert links.count("\n") == own.count("\n")
    assert inspect(cli, "hosty")["HostConfig"]["NetworkMode"] == "host"


def test_host_mode_uses_the_hosts_name_and_non_root_binds_low_ports_elsewhere(cli,
                                                                              busybox) -> None:
    assert cli("run", "--rm", "--network", "host", "busybox",
               "hostname").stdout.strip() == socket.gethostname()
    # Docker's net.ipv4.ip_unprivileged_port_start=0 in a container's own namespace
    served = cli("run", "--rm", "--user", "1000", "busybox", "sh", "-c",
                 "nc -l -p 80 & sleep 0.3; netstat -ltn | grep -c ':80 '", check=False)
    assert served.stdout.strip() == "1", served.stderr


def test_ps_shows_published_ports_while_running(cli, busybox) -> None:
    cli("run", "-d", "--name", "pub", "-p", "127.0.0.1:18123:80", "busybox", "sleep", "60")
    row = next(line for line in cli("ps").stdout.splitlines() if "pub" in line)
    assert "127.0.0.1:18123->80/tcp" in row
    listed = json.loads(cli("ps", "--json").stdout)
    assert listed[0]["Ports"] == "127.0.0.1:18123->80/tcp"
    cli("stop", "-t", "0", "pub")
    assert "->" not in next(line for line in cli("ps", "-a").stdout.splitlines()
                            if "pub" in line)


def test_reconcile_reinstalls_flushed_rules_and_the_port_answers_again(cli, busybox,
                                                                      berth_root) -> None:
    from runtime.host import Host

    cli("run", "-d", "--name", "web", "-p", "8000", "busybox", "sh", "-c", SERVE_TCP)
    port = int(cli("port", "web").stdout.strip().rsplit(":", 1)[1])
    assert talk(None, "127.0.0.1", port).startswith("pong-")
    manager = Host(berth_root).networks.manager
    subprocess.run(["nft", "flush", "table", "inet", manager.table], check=True)
    assert talk(None, "127.0.0.1", port).startswith("error")
    assert manager.ensure_rules() is True and manager.ensure_rules() is False
    assert talk(None, "127.0.0.1", port).startswith("pong-")
    subprocess.run(["nft", "delete", "table", "inet", manager.table], check=True)
    cli("reconcile")
    assert talk(None, "127.0.0.1", port).startswith("pong-")


def test_default_network_and_cli_listing(cli, busybox) -> None:
    cli("run", "-d", "--name", "plain", "-P", "busybox", "sleep", "60")
    data = inspect(cli, "plain")
    assert data["HostConfig"]["NetworkMode"] == "berth"
    assert data["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
    # the primary network's address at the top level too, as docker prints it
    assert data["NetworkSettings"]["IPAddress"] == \
        data["NetworkSettings"]["Networks"]["berth"]["IPAddress"]
    listed = cli("network", "ls").stdout.splitlines()
    assert listed[0].split()[:2] == ["NETWORK", "ID"] and "berth" in listed[1]
    created = cli("network", "create", "lab", "--subnet", "10.244.0.0/24", "--gateway",
                  "10.244.0.254", "--label", "env=test").stdout.strip()
    lab = json.loads(cli("network", "inspect", "lab").stdout)[0]
    assert lab["Id"] == created and lab["Labels"] == {"env": "test"}
    assert lab["IPAM"]["Config"] == [{"Subnet": "10.244.0.0/24", "Gateway": "10.244.0.254"}]
    overlap = cli("network", "create", "lab2", "--subnet", "10.244.0.128/25", check=False)
    assert overlap.returncode == 125 and "overlaps 10.244.0.0/24" in overlap.stderr
    assert "lab2" not in cli("network", "ls", "-q").stdout.split()


def _host_address() -> str:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            if not route["dst_len"] and route.get_attr("RTA_OIF"):
                index = route.get_attr("RTA_OIF")
                return ipr.get_addr(family=2, index=index)[0].get_attr("IFA_ADDRESS")
    return os.environ.get("BERTH_TEST_HOST_ADDRESS", "127.0.0.2")


def test_a_wiring_failure_fails_the_start_and_leaves_nothing(berth_root: Path, busybox,
                                                             monkeypatch) -> None:
    # the interfaces are wired while conmon has runc create the container: a failure there
    # must still undo the created container, its namespace, veth, address and port
    from runtime.containers.options import RunOptions
    from runtime.errors import RuntimeFailure
    from runtime.host import Host

    host = Host(berth_root)
    manager = host.networks.manager
    wire = manager.wire

    def failing(owner: str) -> None:
        wire(owner)
        raise RuntimeFailure("the kernel refused the veth (test)")

    monkeypatch.setattr(manager, "wire", failing)
    created = host.containers.create(RunOptions(image="busybox", command=["sleep", "60"],
                                                 name="wired", publish=["127.0.0.1::80"]))
    with pytest.raises(RuntimeFailure, match="refused the veth"):
        host.containers.start(created.id)
    container = host.containers.get("wired")
    assert not container.running and "refused the veth" in container.state["Error"]
    assert not bridge.netns_exists(bridge.netns_name(container.id))
    assert not bridge.links_with_prefix(bridge.veth_name(container.id, "berth"))
    assert manager.ports.bindings() == []
    runtime = host.containers.runtime_for(container)
    assert subprocess.run(runtime.argv("state", container.id), capture_output=True
                          ).returncode != 0  # the created container was deleted again
    monkeypatch.setattr(manager, "wire", wire)
    started = host.containers.start("wired")
    endpoint = started.network_settings["Networks"]["berth"]
    assert endpoint["MacAddress"] == bridge.mac_for(endpoint["IPAddress"])
    inside = subprocess.run(["ip", "netns", "exec", bridge.netns_name(started.id), "cat",
                             "/sys/class/net/eth0/address"], capture_output=True, text=True)
    assert inside.stdout.strip() == endpoint["MacAddress"]
