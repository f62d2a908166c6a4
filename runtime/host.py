"""One host's runtime state under one root directory: the entry point for the CLI and the agent.

    host = Host("/var/lib/berth")
    host.images      # ImageStore
    host.containers  # ContainerManager
    host.volumes     # VolumeStore
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.images.store import ImageStore

if TYPE_CHECKING:
    from runtime.containers.manager import ContainerManager
    from runtime.network.provider import BridgeNetworks
    from runtime.volumes import VolumeStore


class Host:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.images = ImageStore(self.root)

    @cached_property
    def containers(self) -> ContainerManager:
        from runtime.containers.manager import ContainerManager

        return ContainerManager(self)

    @cached_property
    def networks(self) -> BridgeNetworks:
        """Bridge networks (runtime/network): `host.networks.manager` creates and lists them;
        the container manager uses it as its NetworkProvider."""
        from runtime.network.provider import BridgeNetworks

        return BridgeNetworks(self)

    @cached_property
    def volumes(self) -> VolumeStore:
        from runtime.volumes import VolumeStore

        return VolumeStore(self.root)

    def reconcile(self) -> None:
        """Bring the host in line with the state on disk, after an agent (re)start, a reboot or
        something flushing the packet filter: re-create missing bridges, drop sandboxes whose
        namespace is gone, reinstall the nftables rules, restart name resolution, and finalise
        every container that exited while nothing watched (its exit code, mounts and network
        released). Idempotent and cheap when nothing is wrong; restarting containers by their
        policies is `Supervisor.boot()`."""
        self.containers.list(all=True)  # refresh: exits seen now are finalised
        if (self.root / "networks").is_dir():
            self.networks.manager.reconcile()

    def purge(self) -> None:
        """Remove every container and volume of this root (tests and `berth-runtime system reset`).
        The background supervisor goes first (it would restart containers), then containers
        (they hold mounts and volumes)."""
        from runtime.supervisor import stop_background

        stop_background(self.root)
        self.containers.purge()
        self.volumes.purge()
        self.networks.manager.purge()
