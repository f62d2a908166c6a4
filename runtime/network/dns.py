"""Name resolution between containers: aardvark-dns, podman's DNS server, on each gateway.

Why aardvark-dns rather than rewriting every peer's /etc/hosts:
- a lookup is answered from memory by one process, so adding the 250th container costs one
  small file rewrite and a SIGHUP, not a rewrite of 249 other containers' hosts files (and no
  container ever reads a half-written hosts file);
- it answers per network by the asking container's source address, so names of other networks
  do not resolve, and a name follows a container that is recreated with a new address as soon as
  the entry changes;
- names it does not know are forwarded to the host's own resolvers (read from the host's
  /etc/resolv.conf), so external names resolve as on the host; a loopback resolver of the host
  (systemd-resolved's 127.0.0.53) keeps working because aardvark runs in the host namespace.
It is a Debian package (`aardvark-dns`, already pulled in by podman) and a single small process
shared by all networks of a root; it detaches itself, like conmon, so it outlives the CLI.

Configuration (aardvark's format, one file per network in `ROOT/networks/dns/`):

    GATEWAY_IP
    <container id> <ipv4> <ipv6> <name>,<alias>,…

A network's file exists only while it has entries; when the last file goes, the server is
stopped, so an idle root leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from runtime import fsutil
from runtime.errors import RuntimeFailure

AARDVARK_CANDIDATES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns")
PID_FILE = "aardvark.pid"
DNS_PORT = 53


def aardvark_binary() -> str:
    """Path of aardvark-dns, or RuntimeFailure saying how to install it."""
    for candidate in AARDVARK_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("aardvark-dns")
    if found:
        return found
    raise RuntimeFailure("name resolution needs aardvark-dns; run `make setup` "
                         "(apt-get install aardvark-dns)")


class DnsServer:
    """The aardvark-dns instance of one root and its per-network entries."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.lock_path = directory.parent / "dns.lock"

    def set_entry(self, network: str, gateway: str, owner: str, address: str,
                  names: list[str]) -> None:
        """Make `names` resolve to `address` for containers of `network` (replacing any entry
        of `owner` there), and reload the server."""
        with fsutil.locked(self.lock_path):
            path = self.dir / network
            entries = self._entries(path)
            entries = [line for line in entries if line.split(" ", 1)[0] != owner]
            unique = list(dict.fromkeys(n.lower() for n in names if n))
            entries.append(f"{owner} {address}  {','.join(unique)}")
            new_listener = not path.exists()
            self._write(path, gateway, entries)
            self._reload(wait_for=gateway if new_listener else None)

    def remove_entry(self, network: str, owner: str) -> None:
        """Forget `owner` on `network` (idempotent); the network's file goes with its last
        entry, the server with the last file."""
        with fsutil.locked(self.lock_path):
            path = self.dir / network
            if not path.exists():
                return
            lines = path.read_text().splitlines()
            entries = [line for line in lines[1:] if line and line.split(" ", 1)[0] != owner]
            if len(entries) == len([line for line in lines[1:] if line]):
                return
            if entries:
                self._write(path, lines[0], entries)
            else:
                path.unlink()
            self._reload(wait_for=None)

    def remove_network(self, network: str) -> None:
        """Drop a network's file (the network is being removed)."""
        with fsutil.locked(self.lock_path):
            path = self.dir / network
            if path.exists():
                path.unlink()
                self._reload(wait_for=None)

    def names(self, network: str) -> dict[str, list[str]]:
        """Owner → names registered on `network` (for inspect and tests)."""
        return {line.split(" ")[0]: line.split(" ")[3].split(",")
                for line in self._entries(self.dir / network)}

    def pid(self) -> int | None:
        """The running server's pid, if it runs."""
        try:
            pid = int((self.dir / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"aardvark" in cmdline and str(self.dir).encode() in cmdline else None

    def ensure_running(self) -> None:
        """Start the server if it has networks to serve and is not running (reconcile)."""
        with fsutil.locked(self.lock_path):
            if self._networks() and self.pid() is None:
                self._reload(wait_for=None)

    def stop(self) -> None:
        """Stop the server and forget every entry (root purge)."""
        with fsutil.locked(self.lock_path):
            for path in self._networks():
                path.unlink()
            self._stop()

    # -- internals ---------------------------------------------------------------------------
    def _networks(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return [p for p in self.dir.iterdir() if p.name != PID_FILE and not p.name.startswith(".")]

    @staticmethod
    def _entries(path: Path) -> list[str]:
        try:
            return [line for line in path.read_text().splitlines()[1:] if line]
        except FileNotFoundError:
            return []

    @staticmethod
    def _write(path: Path, gateway: str, entries: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_text("\n".join([gateway, *entries]) + "\n")
        os.replace(tmp, path)

    def _reload(self, wait_for: str | None) -> None:
        """SIGHUP the server (it re-reads every file), start it if it is not running, stop it
        when nothing is left to serve; with `wait_for`, return once it listens there."""
        pid = self.pid()
        if not self._networks():
            self._stop()
            return
        if pid is None:
            result = subprocess.run(
                [aardvark_binary(), "--config", str(self.dir), "-p", str(DNS_PORT), "run"],
                capture_output=True, text=True, timeout=30,
            )
            if result.returncode != 0:
                raise RuntimeFailure(f"aardvark-dns did not start: {result.stderr.strip()}")
        else:
            os.kill(pid, signal.SIGHUP)
        if wait_for:
            _wait_listening(wait_for, DNS_PORT)

    def _stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.01)
        (self.dir / PID_FILE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_listening(address: str, port: int, timeout: float = 5.0) -> None:
    """Poll /proc/net/udp until something listens on address:port (aardvark binds after it
    reports ready, and after a SIGHUP)."""
    octets = address.split(".")
    wanted = "".join(f"{int(o):02X}" for o in reversed(octets)) + f":{port:04X}"
    deadline = time.monotonic() + timeout
    delay = 0.002
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as f:
            if any(line.split()[1] == wanted for line in f.readlines()[1:]):
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    raise RuntimeFailure(f"aardvark-dns did not start listening on {address}:{port}")
