"""The network seam: how a container gets its network namespace and name-resolution files.

Until the networking issue lands, every container gets a fresh network namespace with only the
loopback interface up (the OCI runtime creates it when the spec names no namespace path, and
brings `lo` up). A networking implementation replaces `LoopbackOnly` on the manager
(`ContainerManager.network = …`) with one that creates/joins a namespace, wires veths and writes
/etc/hosts entries for its peers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtime.containers.record import Container

if TYPE_CHECKING:
    from runtime.containers.options import RunOptions


class NetworkProvider(Protocol):
    """What the container manager needs from networking."""

    def prepare(self, container: Container) -> str | None:
        """Called before the runtime creates the container: return a network namespace path to
        join, or None to let the runtime create a new (loopback-only) one."""

    def wire(self, container: Container) -> None:
        """Called after `prepare`, in another thread while the OCI runtime creates the
        container and before it starts: finish the namespace `prepare` returned (interfaces,
        addresses, routes, names, rules); on failure the start fails and `release` runs."""

    def attached(self, container: Container, pid: int) -> None:
        """Called once the container's init process exists (its namespace is /proc/PID/ns/net)."""

    def release(self, container: Container) -> None:
        """Called after the container stopped (idempotent): undo what `prepare` set up."""

    def hosts_entries(self, container: Container) -> list[str]:
        """Extra /etc/hosts lines for the container ("ADDRESS NAME…")."""

    def resolv_conf(self, container: Container) -> str:
        """The container's /etc/resolv.conf."""

    def configure(self, options: RunOptions, config: dict[str, Any],
                  host_config: dict[str, Any]) -> dict[str, Any]:
        """At create time, before anything exists: validate the network options, fill
        HostConfig (NetworkMode, PortBindings…) and return the container's NetworkSettings."""

    def removed(self, container: Container) -> None:
        """Called when the container is removed (idempotent): free what it kept between runs
        (its addresses)."""


class LoopbackOnly:
    """A new network namespace per container with only `lo`."""

    def prepare(self, container: Container) -> str | None:
        return None

    def wire(self, container: Container) -> None:
        return None

    def configure(self, options: RunOptions, config: dict[str, Any],
                  host_config: dict[str, Any]) -> dict[str, Any]:
        return {}

    def removed(self, container: Container) -> None:
        return None

    def attached(self, container: Container, pid: int) -> None:
        return None

    def release(self, container: Container) -> None:
        return None

    def hosts_entries(self, container: Container) -> list[str]:
        return []

    def resolv_conf(self, container: Container) -> str:
        """The host's resolv.conf without loopback name servers (unreachable from inside)."""
        try:
            lines = Path("/etc/resolv.conf").read_text().splitlines()
        except OSError:
            lines = []
        kept = [line for line in lines
                if not (line.startswith("nameserver") and (" 127." in line or " ::1" in line))]
        return "\n".join(kept).strip() + "\n"


def hosts_file(container: Container, hostname: str, extra: list[str]) -> str:
    """The container's /etc/hosts: localhost entries, its own name, then the provider's."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"127.0.1.1\t{hostname} {container.name}",
        *extra,
    ]
    return "\n".join(lines) + "\n"
