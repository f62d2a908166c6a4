"""Named volumes: directories that outlive containers and are bind-mounted into 1..N of them.

Layout under the runtime root (as Docker's `local` driver lays it out):

    volumes/<name>/_data          the volume's content, bind-mounted into containers
    volumes/<name>/volume.json    labels, creation time, anonymous or not
    volumes/.lock                 serialises create / remove / the swap phase of a restore

A volume appears and disappears atomically: it is built in a hidden directory and renamed to its
name, and removed by renaming it to a hidden directory first. Valid names never start with a dot,
so hidden directories (creations, removals, restore staging) never look like volumes.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime import fsutil
from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.volumes import archive, populate

NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
NAME_MAX = 255
DRIVER = "local"
UsersOf = Callable[[str], list[str]]


def validate_volume_name(name: str) -> str:
    """Return `name` if Docker would accept it as a volume name, else raise InvalidArgument."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or len(name) > NAME_MAX:
        raise InvalidArgument(
            f"invalid volume name {name!r}: use 2 to {NAME_MAX} characters from "
            "[a-zA-Z0-9_.-], starting with a letter or digit"
        )
    return name


def validate_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """A copy of `labels`, refusing keys that are empty and keys or values that are not text."""
    checked: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not isinstance(key, str) or not key or "\0" in key:
            raise InvalidArgument(f"invalid volume label key {key!r}: use a non-empty string")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidArgument(f"invalid value for volume label {key!r}: use a string")
        checked[key] = value
    return checked


@dataclass
class Volume:
    """One named volume. `mountpoint` is the directory bind-mounted into containers."""

    name: str
    mountpoint: Path
    labels: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    anonymous: bool = False

    def to_json(self) -> dict[str, Any]:
        """The volume as `docker volume inspect` prints it."""
        return {
            "CreatedAt": self.created_at,
            "Driver": DRIVER,
            "Labels": dict(self.labels),
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": {},
            "Scope": "local",
        }


class VolumeStore:
    """All volumes of one runtime root. Safe to use from several processes at once."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.base = self.root / "volumes"
        self.lock_path = self.base / ".lock"

    # -- paths -------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.base / validate_volume_name(name)

    def _load(self, name: str) -> Volume | None:
        directory = self._dir(name)
        meta = fsutil.read_json(directory / "volume.json")
        if meta is None:
            return None
        return Volume(
            name=name,
            mountpoint=directory / "_data",
            labels=dict(meta.get("labels") or {}),
            created_at=meta.get("created_at", ""),
            anonymous=bool(meta.get("anonymous", False)),
        )

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self.base.mkdir(mode=0o701, parents=True, exist_ok=True)
        return fsutil.locked(self.lock_path)

    # -- create / read -----------------------------------------------------------------------
    def create(self, name: str | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> Volume:
        """Create a volume and return it; an existing volume of that name is returned as is.

        `name` None picks a random 64-hex name, as Docker does for anonymous volumes."""
        name = validate_volume_name(secrets.token_hex(32) if name is None else name)
        checked_labels = validate_labels(labels)
        with self._lock():
            existing = self._load(name)
            if existing is not None:
                return existing
            target = self._dir(name)
            if os.path.lexists(target):
                raise Conflict(
                    f"cannot create volume {name!r}: {str(target)!r} exists but is not a volume; "
                    "move it away"
                )
            building = Path(tempfile.mkdtemp(dir=self.base, prefix=".create-"))
            try:
                os.chmod(building, 0o755)
                os.mkdir(building / "_data", 0o755)
                created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                fsutil.write_json_atomic(building / "volume.json", {
                    "name": name,
                    "labels": checked_labels,
                    "created_at": created_at,
                    "anonymous": anonymous,
                })
                os.rename(building, target)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
        volume = self._load(name)
        assert volume is not None
        return volume

    def get(self, name: str) -> Volume:
        """The volume called `name`; NotFound if there is none."""
        volume = self._load(name)
        if volume is None:
            raise NotFound(f"no such volume: {name!r} (`berth-runtime volume ls` lists them)")
        return volume

    def exists(self, name: str) -> bool:
        """Whether a volume called `name` exists (False for names Docker would refuse)."""
        try:
            return self._load(name) is not None
        except InvalidArgument:
            return False

    def list(self) -> list[Volume]:
        """Every volume of this root, sorted by name."""
        if not self.base.is_dir():
            return []
        found = []
        for entry in sorted(os.listdir(self.base)):
            if entry.startswith(".") or not NAME_PATTERN.fullmatch(entry):
                continue
            volume = self._load(entry)
            if volume is not None:
                found.append(volume)
        return found

    # -- remove ------------------------------------------------------------------------------
    def remove(self, name: str, users: UsersOf | None = None, force: bool = False) -> None:
        """Remove the volume and its content.

        Refused (Conflict, naming the containers) while `users(name)` lists any: Docker refuses
        that even with force. `force` only makes a missing volume no error, as `docker volume rm
        -f` does."""
        with self._lock():
            if self._load(name) is None:
                if force:
                    return
                raise NotFound(f"no such volume: {name!r} (`berth-runtime volume ls` lists them)")
            self._refuse_if_used(name, users, "remove")
            self._discard(self._dir(name))

    def _refuse_if_used(self, name: str, users: UsersOf | None, action: str) -> None:
        in_use = sorted(users(name)) if users is not None else []
        if in_use:
            raise Conflict(
                f"cannot {action} volume {name!r}: it is in use by container(s) "
                f"{', '.join(in_use)}; remove those containers first"
                + (" or use --force" if action == "restore into" else "")
            )

    def _discard(self, directory: Path) -> None:
        """Make `directory` vanish atomically (rename), then delete it. Refused if anything is
        mounted below it: deleting would reach into the mounted filesystem."""
        mounted = mounts_under(directory)
        if mounted:
            raise Conflict(
                f"cannot remove {str(directory)!r}: {', '.join(mounted)} is mounted below it; "
                "unmount it first"
            )
        doomed = self.base / f".removing-{secrets.token_hex(8)}"
        os.rename(directory, doomed)
        shutil.rmtree(doomed)

    def prune(self, users: UsersOf, all_volumes: bool = False) -> builtins.list[str]:
        """Remove the volumes no container uses: anonymous ones only, or all with `all_volumes`
        (Docker's `volume prune [-a]`). Returns the names removed."""
        removed = []
        for volume in self.list():
            if not (volume.anonymous or all_volumes):
                continue
            with self._lock():
                if self._load(volume.name) is None or users(volume.name):
                    continue
                self._discard(self._dir(volume.name))
            removed.append(volume.name)
        return removed

    def purge(self) -> None:
        """Remove every volume of this root, and leftovers of interrupted operations. Callers
        remove the containers first (Host.purge does)."""
        if not self.base.exists():
            return
        with self._lock():
            mounted = mounts_under(self.base)
            if mounted:
                raise Conflict(
                    f"cannot purge volumes: {', '.join(mounted)} is mounted below "
                    f"{str(self.base)!r}; unmount it first"
                )
            for entry in os.listdir(self.base):
                path = self.base / entry
                if path == self.lock_path:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        shutil.rmtree(self.base)

    # -- backup / restore --------------------------------------------------------------------
    def populate(self, name: str, rootfs: Path, destination: str) -> bool:
        """Docker's copy-up: if the volume is empty, give it what the container's image has at
        `destination` (inside the mounted `rootfs`), owners and modes included. Returns whether
        anything was copied (populate.py)."""
        volume = self.get(name)
        with self._lock():
            return populate.copy_image_content(Path(rootfs), destination, volume.mountpoint)

    def backup(self, name: str, file: Path) -> int:
        """Write the volume's content to `file` as a tar archive: zstd-compressed when the name
        ends in `.zst`, gzip for `.gz`/`.tgz`, plain otherwise. Returns the archive's size.

        A failed backup leaves no `file` behind. Containers may keep running, but a volume that
        changes during the backup is captured as the walk finds it: stop writers first for a
        consistent copy."""
        volume = self.get(name)
        return archive.write_backup(volume.mountpoint, Path(file), name)

    def restore(self, name: str, file: Path, users: UsersOf | None = None,
                force: bool = False) -> Volume:
        """Replace the volume's content by the archive `file` (as `backup` writes it, or any
        plain/gzip/zstd tar). The volume is created if it does not exist.

        Refused while `users(name)` lists containers, unless `force`: then they see the new
        content at once. The archive is unpacked into a staging directory first, so a refused
        entry or a broken archive leaves the old content untouched (and removes a volume this
        call created)."""
        file = Path(file)
        if not file.is_file():
            raise NotFound(f"backup file {str(file)!r} does not exist or is not a file")
        created = not self.exists(name)
        volume = self.create(name)
        directory = self._dir(name)
        staging = graveyard = None
        try:
            if not force:
                self._refuse_if_used(name, users, "restore into")
            staging = Path(tempfile.mkdtemp(dir=directory, prefix=".restore-"))
            root_meta = archive.extract_backup(file, staging)
            with self._lock():
                if self._load(name) is None:
                    raise NotFound(f"volume {name!r} was removed while it was being restored")
                if not force:
                    self._refuse_if_used(name, users, "restore into")
                graveyard = Path(tempfile.mkdtemp(dir=directory, prefix=".old-"))
                archive.swap_contents(volume.mountpoint, staging, graveyard, root_meta)
        except BaseException:
            if created:
                with contextlib.suppress(Exception), self._lock():
                    self._discard(directory)
            raise
        finally:
            for leftover in (staging, graveyard):
                if leftover is not None:
                    archive.discard_tree(leftover)
        return volume


def _unescape_mount_path(field_text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this process's mount namespace."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            mount_point = _unescape_mount_path(line.split()[4])
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                found.append(mount_point)
    return found
