"""Tiny TCP/UDP echo servers and clients run inside network namespaces (via nsenter), for the
networking tests. All traffic stays inside namespaces the tests create and on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port)); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", port))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(b"udp:" + data, peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    with conn:
        data = conn.recv(2048)
        conn.sendall(b"tcp:" + data + b" from " + peer[0].encode())
"""

CLIENT = r"""
import socket, sys
host, port, proto, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=2)
        s.sendall(msg); print(s.recv(2048).decode())
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(msg, (host, port)); print(s.recv(2048).decode())
except OSError as exc:
    print(f"error: {exc.__class__.__name__}: {exc}")
"""


def _prefix(netns_path: str | None) -> list[str]:
    return ["nsenter", f"--net={netns_path}"] if netns_path else []


@contextmanager
def echo_server(netns_path: str | None, port: int) -> Iterator[subprocess.Popen]:
    """A TCP+UDP echo server on `port` in the namespace (None: the host), stopped on exit."""
    proc = subprocess.Popen([*_prefix(netns_path), sys.executable, "-c", SERVER, str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def talk(netns_path: str | None, host: str, port: int, proto: str = "tcp",
         message: str = "hello") -> str:
    """Send `message` from inside the namespace; the echo's answer, or "error: …"."""
    result = subprocess.run(
        [*_prefix(netns_path), sys.executable, "-c", CLIENT, host, str(port), proto, message],
        capture_output=True, text=True, timeout=30,
    )
    return result.stdout.strip() or f"error: {result.stderr.strip()}"


def lookup(netns_path: str, name: str, server: str, expect: str | None = "any",
           attempts: int = 40) -> str | None:
    """Resolve `name` with the DNS server at `server` from inside the namespace. The server
    reloads asynchronously after a change, so the query is repeated (a few times, briefly)
    until the answer is `expect` ("any" = any address, None = no address)."""
    answer = None
    for _ in range(attempts):
        answer = _lookup_once(netns_path, name, server)
        if answer == expect or (expect == "any" and answer is not None):
            return answer
        time.sleep(0.05)
    return answer


def _lookup_once(netns_path: str, name: str, server: str) -> str | None:
    result = subprocess.run(["nsenter", f"--net={netns_path}", "busybox", "nslookup", name,
                             server], capture_output=True, text=True, timeout=30)
    answers = result.stdout.split("Name:")[1:] if result.returncode == 0 else []
    for answer in answers:
        for line in answer.splitlines():
            if line.startswith("Address:"):
                return line.split()[-1]
    return None
