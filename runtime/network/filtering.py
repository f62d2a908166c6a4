"""Packet filtering: outbound NAT, published ports, isolation, internal networks (nftables).

Why nftables through `nft`'s own language: one `inet` table that Berth alone owns is replaced in a
single atomic transaction (`table …{}; delete table …; table … {…}` piped to `nft -f -`), so the
rules are always exactly what the state on disk says — never half-applied, trivially reinstalled
after something flushed them, and removed without touching anybody else's tables (podman's,
docker's, iptables-nft's). pyroute2's nftables support is low-level (one netlink expression at a
time, no transactions across chains in its public API) and would need far more code for the same
result; the `nft` text syntax is the documented interface and is what a reader can check with
`nft list table inet berth`. The script is run in-process by libnftables (the library behind the
`nft` tool, part of the nftables package), which saves a fork+exec per change; the `nft` tool is
the fallback.

The table is `inet berth` for the default root (/var/lib/berth) and `inet berth_<hash>` for any
other root, so a test root or a second instance never rewrites the production rules.

Published ports and 127.0.0.1: rules DNAT in the nat `prerouting` (traffic from outside and from
containers) and `output` (traffic from the host itself) hooks, for every local destination address
(`fib daddr type local`). Traffic to 127.0.0.1 that is DNATed to a container would be dropped as a
"martian" when it leaves on the bridge; we set `route_localnet=1` on Berth's bridges only (not
globally) and masquerade such packets to the bridge address, as netavark does. We chose this over
a userspace proxy (docker-proxy) because it needs no process per port, keeps UDP working the same
way, and costs nothing per packet in Python. Hairpin (a container reaching a published port of a
peer on its own bridge) is masqueraded too, so the reply comes back through the host.

Port groups (replicas of one service sharing a host port, ports.py): the rules of one host
address/port/protocol with several serving members become one DNAT whose target is picked by
`numgen inc mod N` from a map of the members' address.port, so new connections are spread
round-robin over the healthy replicas; the whole table is re-rendered whenever a member joins,
leaves or turns unhealthy, and established connections keep their conntrack mapping.

Isolation: in the forward hook, traffic from one Berth bridge to another is dropped unless it is
DNATed (a published port) or belongs to such a connection; an internal network's bridge forwards
nothing in or out (and its containers get no default route). Outbound traffic of non-internal
networks is masqueraded.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import RuntimeFailure

DEFAULT_ROOT = Path("/var/lib/berth")
TABLE_PREFIX = "berth"


@dataclass(frozen=True)
class NetworkRules:
    """What the ruleset needs to know about one network."""

    bridge: str
    subnet: str
    internal: bool


@dataclass(frozen=True)
class PortRule:
    """One published port: host (address, port, protocol) → container address and port."""

    host_ip: str  # "" for every host address
    host_port: int
    protocol: str  # tcp or udp
    container_ip: str
    container_port: int


def table_name(root: Path) -> str:
    """`berth` for the default root, `berth_<8 hex>` for any other root."""
    if Path(root).resolve() == DEFAULT_ROOT:
        return TABLE_PREFIX
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    return f"{TABLE_PREFIX}_{digest}"


def render(table: str, networks: list[NetworkRules], ports: list[PortRule]) -> str:
    """The complete `nft -f` script that replaces the table with the given state."""
    lines = [f"table inet {table} {{}}", f"delete table inet {table}"]
    if not networks:
        return "\n".join(lines) + "\n"
    bridges = [n.bridge for n in networks]
    internal = [n.bridge for n in networks if n.internal]
    lines.append(f"table inet {table} {{")
    lines += [
        "  chain ports {",
        *(f"    {rule}" for rule in _port_rules(ports)),
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat - 5; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -105; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat - 5; policy accept;",
        f"    ct status dnat ip saddr 127.0.0.0/8 oifname {_set(bridges)} masquerade",
    ]
    for network in networks:
        lines.append(f"    ct status dnat ip saddr {network.subnet} oifname \"{network.bridge}\""
                     " masquerade")
        if not network.internal:
            lines.append(f"    ip saddr {network.subnet} ip daddr != {network.subnet} masquerade")
    lines += [
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter - 5; policy accept;",
    ]
    if internal:
        lines += [
            f"    iifname {_set(internal)} oifname != {_set(internal)} drop",
            f"    oifname {_set(internal)} iifname != {_set(internal)} drop",
        ]
        for bridge in internal:
            if len(internal) > 1:
                others = [b for b in internal if b != bridge]
                lines.append(f"    iifname \"{bridge}\" oifname {_set(others)} drop")
    lines += ["    ct state established,related accept", "    ct status dnat accept"]
    for bridge in bridges:
        others = [b for b in bridges if b != bridge]
        if others:
            lines.append(f"    iifname \"{bridge}\" oifname {_set(others)} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply(table: str, networks: list[NetworkRules], ports: list[PortRule]) -> None:
    """Replace the table atomically (or remove it when there are no networks)."""
    _nft(render(table, networks, ports))


def remove(table: str) -> None:
    """Remove the table if it exists."""
    _nft(render(table, [], []))


def intact(table: str) -> bool:
    """Whether the table is in the kernel with its rules (not deleted by `nft flush ruleset`,
    nor emptied by `nft flush table`): its prerouting chain still jumps to the port map."""
    library = _libnftables()
    if library is None:
        result = subprocess.run(["nft", "list", "chain", "inet", table, "prerouting"],
                                capture_output=True, text=True)
        return result.returncode == 0 and "jump ports" in result.stdout
    with _LOCK:
        status = library.nft_run_cmd_from_buffer(
            _CONTEXT[0], f"list chain inet {table} prerouting".encode())
        output = (library.nft_ctx_get_output_buffer(_CONTEXT[0]) or b"").decode(errors="replace")
        library.nft_ctx_get_error_buffer(_CONTEXT[0])  # drop the error text of a missing table
    return status == 0 and "jump ports" in output


def installed(table: str) -> bool:
    """Whether the table is present in the kernel."""
    result = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                            text=True)
    return result.returncode == 0


def tables() -> set[str]:
    """Names of the inet tables that are Berth's (leak checks)."""
    result = subprocess.run(["nft", "list", "tables", "inet"], capture_output=True, text=True)
    names = {line.split()[-1] for line in result.stdout.splitlines() if line.startswith("table")}
    return {n for n in names if n == TABLE_PREFIX or n.startswith(f"{TABLE_PREFIX}_")}


def _port_rules(ports: list[PortRule]) -> list[str]:
    """One rule per host (address, port, protocol): a plain DNAT for one target, a round-robin
    map over the targets of a port group (in the order given, without duplicates)."""
    grouped: dict[tuple[str, int, str], list[PortRule]] = {}
    for rule in ports:
        targets = grouped.setdefault((rule.host_ip, rule.host_port, rule.protocol), [])
        if all((t.container_ip, t.container_port) != (rule.container_ip, rule.container_port)
               for t in targets):
            targets.append(rule)
    return [_port_rule(targets) for targets in grouped.values()]


def _port_rule(targets: list[PortRule]) -> str:
    rule = targets[0]
    match_ip = f"ip daddr {rule.host_ip} " if rule.host_ip not in ("", "0.0.0.0") else ""
    head = f"{match_ip}{rule.protocol} dport {rule.host_port} "
    if len(targets) == 1:
        return f"{head}dnat ip to {rule.container_ip}:{rule.container_port}"
    members = ", ".join(f"{index} : {t.container_ip} . {t.container_port}"
                        for index, t in enumerate(targets))
    return f"{head}dnat ip to numgen inc mod {len(targets)} map {{ {members} }}"


CONNTRACK_TABLE = Path("/proc/net/nf_conntrack")
# conntrack's TCP states of a connection not closed yet (TIME_WAIT and CLOSE are closed)
OPEN_TCP_STATES = frozenset({"SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                             "LAST_ACK", "SYN_SENT2"})


def open_connections(addresses: set[str], table: Path = CONNTRACK_TABLE) -> int:
    """How many TCP connections conntrack tracks to `addresses` (after DNAT: the reply
    direction's source) that are not closed yet; a port-group member that left its group
    drains until this is 0. Read from the kernel's text table (milliseconds for thousands of
    entries; a netlink dump parsed in Python takes a second); 0 when there is none.

    A line: `ipv4 2 tcp 6 TTL STATE src= dst= sport= dport= src= dst= sport= dport= ...`,
    the second `src=` being the reply's source."""
    if not addresses:
        return 0
    wanted = {f"src={address}" for address in addresses}
    count = 0
    try:
        with open(table) as lines:
            for line in lines:
                fields = line.split()
                if len(fields) < 7 or fields[2] != "tcp" or fields[5] not in OPEN_TCP_STATES:
                    continue
                sources = [f for f in fields[6:] if f.startswith("src=")]
                if len(sources) >= 2 and sources[1] in wanted:
                    count += 1
    except OSError:  # no conntrack table here: nothing to wait for
        return 0
    return count


def _set(names: list[str]) -> str:
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def _nft(script: str) -> None:
    """Run an `nft -f` script: in-process through libnftables (the library the `nft` tool is a
    thin front-end for; ~1 ms instead of ~15 ms for a fork+exec), else through the tool."""
    library = _libnftables()
    if library is None:
        _nft_tool(script)
        return
    with _LOCK:
        fd = os.memfd_create("berth-nft")
        try:
            os.write(fd, script.encode())
            status = library.nft_run_cmd_from_filename(_CONTEXT[0], f"/proc/self/fd/{fd}".encode())
        finally:
            os.close(fd)
        error = (library.nft_ctx_get_error_buffer(_CONTEXT[0]) or b"").decode(errors="replace")
    if status != 0:
        raise RuntimeFailure(f"nft refused Berth's ruleset: {error.strip()}")


_LOCK = threading.Lock()
_CONTEXT: list[int] = []
_LIBRARY: list[ctypes.CDLL | None] = []


def _libnftables() -> ctypes.CDLL | None:
    with _LOCK:
        if not _LIBRARY:
            try:
                library = ctypes.CDLL("libnftables.so.1")
                library.nft_ctx_new.restype = ctypes.c_void_p
                library.nft_ctx_new.argtypes = [ctypes.c_uint32]
                library.nft_run_cmd_from_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                library.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
                library.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
                library.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
                library.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
                library.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
                library.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
                library.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                context = library.nft_ctx_new(0)
                library.nft_ctx_buffer_error(context)
                library.nft_ctx_buffer_output(context)  # listings are read, never printed
                _CONTEXT.append(context)
                _LIBRARY.append(library)
            except (OSError, AttributeError):
                _LIBRARY.append(None)
        return _LIBRARY[0]


def _nft_tool(script: str) -> None:
    try:
        result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("the `nft` tool is missing; run `make setup` "
                             "(apt-get install nftables)") from None
    if result.returncode != 0:
        raise RuntimeFailure(f"nft refused Berth's ruleset: {result.stderr.strip()}")
