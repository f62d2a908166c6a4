"""The per-container record on disk and the store that finds containers by id, prefix or name.

Layout under the runtime root:

    containers/<id>/container.json   desired config + observed state (this module)
    containers/<id>/bundle/          OCI bundle: config.json and the rootfs mountpoint
    containers/<id>/upper, work      the overlayfs upper and work directories
    containers/<id>/userdata/        conmon's persist dir (oom file, conmon pid)
    containers/<id>/ctr.log          conmon's k8s-file log
    containers/<id>/hosts, hostname, resolv.conf
    containers/.names/<name>         the name index: holds the id of the container named so
    exits/<id>                       the exit code conmon writes when the container stops

The record keeps docker's field names (Config, HostConfig, State…) so `inspect` is nearly a
straight copy, and so a supervisor can read the restart policy, restart count and health next to
the state it acts on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime import fsutil
from runtime.errors import Conflict, NotFound

ZERO_TIME = "0001-01-01T00:00:00Z"
_NAME_CHARS = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # what a container name can be

# Docker's State.Status values
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead",
)


def now_iso() -> str:
    """The current time as docker prints it (RFC 3339, UTC, nanosecond field)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def parse_iso(text: str) -> float:
    """Seconds since the epoch for a timestamp written by `now_iso` (0 for the zero time)."""
    if not text or text.startswith("0001-"):
        return 0.0
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (float(f"0.{frac}") if frac else 0.0)


def new_state() -> dict[str, Any]:
    return {
        "Status": CREATED, "Running": False, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 0, "ConmonPid": 0, "ExitCode": 0, "Error": "",
        "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }


@dataclass
class Container:
    """One container: desired configuration plus the last observed state."""

    id: str
    name: str
    created: str
    image_id: str
    image_ref: str
    config: dict[str, Any]  # docker Config: Cmd, Entrypoint, Env, WorkingDir, User, Labels…
    host_config: dict[str, Any]  # docker HostConfig: Memory, NanoCpus, PidsLimit, Binds…
    mounts: list[dict[str, Any]]  # docker Mounts: Type, Name, Source, Destination, RW
    state: dict[str, Any] = field(default_factory=new_state)
    runtime: str = "runc"  # path of the OCI runtime binary this container was created with
    restart_count: int = 0
    manually_stopped: bool = False  # for `unless-stopped` and not restarting after `stop`
    directory: Path = Path("/nonexistent")
    network_settings: dict[str, Any] = field(default_factory=dict)  # docker NetworkSettings

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def status(self) -> str:
        return str(self.state["Status"])

    @property
    def running(self) -> bool:
        return self.status in (RUNNING, PAUSED)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def restart_policy(self) -> dict[str, Any]:
        return dict(self.host_config.get("RestartPolicy") or {"Name": "no"})

    @property
    def healthcheck(self) -> dict[str, Any] | None:
        test = (self.config.get("Healthcheck") or {}).get("Test") or []
        return None if not test or test[0] == "NONE" else self.config["Healthcheck"]

    # paths ------------------------------------------------------------------------------
    @property
    def bundle(self) -> Path:
        return self.directory / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def userdata(self) -> Path:
        return self.directory / "userdata"

    @property
    def log_path(self) -> Path:
        return self.directory / "ctr.log"

    @property
    def pidfile(self) -> Path:
        return self.userdata / "pidfile"

    @property
    def conmon_pidfile(self) -> Path:
        return self.userdata / "conmon.pid"

    @property
    def oom_file(self) -> Path:
        return self.userdata / "oom"

    def to_json(self) -> dict[str, Any]:
        return {
            "Id": self.id, "Name": self.name, "Created": self.created, "Image": self.image_id,
            "ImageRef": self.image_ref, "Config": self.config, "HostConfig": self.host_config,
            "Mounts": self.mounts, "State": self.state, "Runtime": self.runtime,
            "RestartCount": self.restart_count, "ManuallyStopped": self.manually_stopped,
            "NetworkSettings": self.network_settings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], directory: Path) -> Container:
        return cls(
            id=data["Id"], name=data["Name"], created=data["Created"], image_id=data["Image"],
            image_ref=data.get("ImageRef", ""), config=data["Config"],
            host_config=data["HostConfig"], mounts=data.get("Mounts", []),
            state={**new_state(), **data.get("State", {})}, runtime=data.get("Runtime", "runc"),
            restart_count=int(data.get("RestartCount", 0)),
            manually_stopped=bool(data.get("ManuallyStopped", False)), directory=directory,
            network_settings=dict(data.get("NetworkSettings") or {}),
        )


class ContainerStore:
    """The container records of one runtime root, safe to use from several processes."""

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / "containers"
        self.exit_dir = root / "exits"
        self.lock_path = self.dir / ".lock"
        self.names_dir = self.dir / ".names"

    def directory(self, container_id: str) -> Path:
        return self.dir / container_id

    def record_path(self, container_id: str) -> Path:
        return self.dir / container_id / "container.json"

    def lock(self, container_id: str | None = None):
        """A cross-process lock: the store's (names, creation) or one container's."""
        if container_id is None:
            return fsutil.locked(self.lock_path)
        return fsutil.locked(self.dir / container_id / ".lock")

    def save(self, container: Container) -> None:
        """Write the record atomically (no fsync: the state is re-derived from conmon's files
        after a crash, and the start path should not wait on the disk)."""
        path = self.record_path(container.id)
        tmp = path.with_name(f".container.json.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(container.to_json()))  # compact: the C encoder, no indent
        os.replace(tmp, path)

    def load(self, container_id: str) -> Container | None:
        try:
            with open(self.record_path(container_id)) as f:
                data = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:
            return None
        return Container.from_json(data, self.directory(container_id))

    def ids(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return [entry.name for entry in os.scandir(self.dir)
                if not entry.name.startswith(".") and entry.is_dir()]

    def all(self) -> Iterator[Container]:
        for container_id in self.ids():
            container = self.load(container_id)
            if container is not None:
                yield container

    def find(self, ref: str) -> Container:
        """By full id, name or unique id prefix (docker's order)."""
        ref = ref.removeprefix("/")
        if len(ref) == 64:
            found = self.load(ref)
            if found is not None:
                return found
        if not self._index_complete():
            return self._find_by_scan(ref)
        if _NAME_CHARS.fullmatch(ref):
            owner = self.name_owner(ref)
            found = self.load(owner) if owner is not None else None
            if found is not None and found.name == ref:
                return found
        prefix = ref.lower()
        matches = [i for i in self.ids() if i.startswith(prefix)] if ref else []
        return self._one(ref, [c for c in (self.load(i) for i in matches) if c is not None])

    def _find_by_scan(self, ref: str) -> Container:
        containers = list(self.all())
        for container in containers:
            if container.name == ref:
                return container
        matches = [c for c in containers if c.id.startswith(ref.lower())] if ref else []
        return self._one(ref, matches)

    @staticmethod
    def _one(ref: str, matches: list[Container]) -> Container:
        if len(matches) > 1:
            raise Conflict(f"container id prefix {ref!r} is ambiguous: give more characters")
        if matches:
            return matches[0]
        raise NotFound(
            f"no such container: {ref!r}; `berth-runtime ps -a` lists the containers on this host"
        )

    def names(self) -> set[str]:
        """Every container's name (reads every record: prefer `name_owner`)."""
        return {c.name for c in self.all()}

    # -- the name index --------------------------------------------------------------------
    # One marker file per name, `.names/<name>`, holding the owner's id: checking or claiming a
    # name costs one file, not a parse of every record. Claims and releases happen under the
    # store lock; a marker whose owner has no record any more (a crash between the two, or a
    # record removed by hand) is stale and the name is free again.
    def _index_complete(self) -> bool:
        return (self.names_dir / ".complete").exists()

    def _ensure_index(self) -> None:
        """Build the index from the records once (roots made before it existed). Call under
        the store lock."""
        if self._index_complete():
            return
        self.names_dir.mkdir(parents=True, exist_ok=True)
        for container in self.all():
            self._write_marker(container.name, container.id)
        (self.names_dir / ".complete").touch()

    def _write_marker(self, name: str, container_id: str) -> None:
        tmp = self.names_dir / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(container_id)
        os.replace(tmp, self.names_dir / name)

    def _marker_owner(self, name: str) -> str | None:
        try:
            return (self.names_dir / name).read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def name_owner(self, name: str) -> str | None:
        """The id of the container called `name`, or None when the name is free."""
        if not self._index_complete():
            return next((c.id for c in self.all() if c.name == name), None)
        owner = self._marker_owner(name)
        if owner is not None and self.record_path(owner).exists():
            return owner
        return None

    def claim_name(self, name: str, container_id: str) -> None:
        """Take `name` for `container_id`. Call under the store lock; a name held by a live
        container is a Conflict naming it."""
        self._ensure_index()
        owner = self.name_owner(name)
        if owner is not None and owner != container_id:
            raise Conflict(f"the container name {name!r} is already in use by container "
                           f"{owner[:12]}; remove it or choose another --name")
        self._write_marker(name, container_id)

    def release_name(self, container: Container, locked: bool = False) -> None:
        """Free the container's name, unless another container has taken it meanwhile
        (`locked`: the caller holds the store lock already)."""
        if not self.names_dir.is_dir():
            return
        if not locked:
            with self.lock():
                self.release_name(container, locked=True)
        elif self._marker_owner(container.name) == container.id:
            (self.names_dir / container.name).unlink(missing_ok=True)

    def remove(self, container: Container) -> None:
        """Delete the record and its directory, then free the name (in that order: a crash in
        between leaves a stale marker, which is reclaimed, never a name without a marker)."""
        (self.exit_dir / container.id).unlink(missing_ok=True)
        shutil.rmtree(container.directory, ignore_errors=True)
        self.release_name(container)


def age(timestamp: str) -> float:
    """Seconds since `timestamp`."""
    return max(0.0, time.time() - parse_iso(timestamp))
