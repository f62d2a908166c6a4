"""Scheduled volume backups on a host: to a directory or to S3-compatible storage, pruned by a
keep-N-daily / keep-N-weekly rule (retention.py), and the restore drill that proves the newest
backup restores byte-exact.

A backup is `<prefix>/<volume>/<UTC time>.tar.zst` (the archive `VolumeStore.backup` writes),
with two digests beside it: `sha256` of the archive (checked before anything is restored) and
`tree` of the volume's content as it was archived (`tree_digest`: every path, type, mode, owner
and byte). On S3 they are the object's metadata; in a directory, a `<name>.json` beside it.
The drill downloads the newest backup, checks its sha256, restores it into a scratch volume,
compares that volume's tree digest with the recorded one, and removes the scratch volume.

Credentials come in the target and are used only for the call; nothing is written to disk but
the archives."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from runtime.errors import BerthError, InvalidArgument
from runtime.fsutil import file_sha256
from runtime.volumes.retention import backups_to_keep

STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(\d{8}T\d{6}Z)\.tar\.zst$")
CHUNK = 1024 * 1024


class BackupFailed(BerthError):
    """A backup, its pruning or a drill could not be done; the message says why."""


@dataclass(frozen=True)
class Stored:
    name: str  # "<time>.tar.zst"
    taken_at: datetime
    sha256: str
    tree: str


def tree_digest(root: Path) -> str:
    """One digest of everything under `root`: each entry's relative path, type, mode, owner,
    and its bytes (a file) or target (a symlink), in path order. Equal digests: same content."""
    digest = hashlib.sha256()
    entries: list[tuple[str, os.stat_result]] = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            entries.append((str(path.relative_to(root)), path.lstat()))
    for relative, info in sorted(entries):
        digest.update(f"{relative}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}"
                      f"\0{info.st_uid}:{info.st_gid}\0".encode())
        path = root / relative
        if stat.S_ISREG(info.st_mode):
            digest.update(file_sha256(path).encode())
        elif stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(path).encode())
    return digest.hexdigest()


class Target(Protocol):
    def put(self, volume: str, name: str, file: Path, sha256: str, tree: str) -> None: ...
    def list(self, volume: str) -> list[Stored]: ...
    def get(self, volume: str, name: str, file: Path) -> None: ...
    def delete(self, volume: str, name: str) -> None: ...


def _stored(name: str, sha256: str, tree: str) -> Stored | None:
    match = _NAME.match(name)
    if not match:
        return None
    taken = datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)
    return Stored(name, taken, sha256, tree)


class DirectoryTarget:
    """Backups in `<path>/<volume>/` on this host (a mounted NAS, a second disk)."""

    def __init__(self, path: str):
        if not path.startswith("/"):
            raise InvalidArgument(f"a backup directory must be an absolute path, not {path!r}")
        self.root = Path(path)

    def _dir(self, volume: str) -> Path:
        directory = self.root / volume
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return directory

    def put(self, volume: str, name: str, file: Path, sha256: str, tree: str) -> None:
        directory = self._dir(volume)
        os.replace(file, directory / name)
        (directory / f"{name}.json").write_text(json.dumps({"sha256": sha256, "tree": tree}))

    def list(self, volume: str) -> list[Stored]:
        found = []
        for path in sorted(self._dir(volume).glob("*.tar.zst")):
            meta_path = path.with_name(path.name + ".json")
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            stored = _stored(path.name, meta.get("sha256", ""), meta.get("tree", ""))
            if stored:
                found.append(stored)
        return found

    def get(self, volume: str, name: str, file: Path) -> None:
        with open(self._dir(volume) / name, "rb") as source, open(file, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)

    def delete(self, volume: str, name: str) -> None:
        for path in (self._dir(volume) / name, self._dir(volume) / f"{name}.json"):
            path.unlink(missing_ok=True)


class S3Target:
    """Backups as objects `<prefix>/<volume>/<name>` in an S3-compatible bucket (boto3)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None,
                 region: str | None = None):
        import boto3
        from botocore.config import Config

        if not bucket:
            raise InvalidArgument("an S3 backup target needs a bucket")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, region_name=region or "us-east-1",
            config=Config(retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=10, read_timeout=60))

    def _key(self, volume: str, name: str = "") -> str:
        return "/".join(p for p in (self.prefix, volume, name) if p)

    def put(self, volume: str, name: str, file: Path, sha256: str, tree: str) -> None:
        # upload_file streams the file in parts (multipart above 8 MiB): memory stays bounded
        self.client.upload_file(str(file), self.bucket, self._key(volume, name),
                                ExtraArgs={"Metadata": {"sha256": sha256, "tree": tree}})

    def list(self, volume: str) -> list[Stored]:
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(volume) + "/")
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if not _NAME.match(name):
                    continue
                meta = self.client.head_object(Bucket=self.bucket, Key=item["Key"])["Metadata"]
                stored = _stored(name, meta.get("sha256", ""), meta.get("tree", ""))
                if stored:
                    found.append(stored)
        return sorted(found, key=lambda s: s.name)

    def get(self, volume: str, name: str, file: Path) -> None:
        self.client.download_file(self.bucket, self._key(volume, name), str(file))

    def delete(self, volume: str, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(volume, name))


def target_from(spec: dict[str, Any]) -> Target:
    """{"kind": "directory", "path"} or {"kind": "s3", "bucket", "prefix", "endpoint_url",
    "access_key", "secret_key", "region"}."""
    kind = spec.get("kind")
    if kind == "directory":
        return DirectoryTarget(str(spec.get("path") or ""))
    if kind == "s3":
        return S3Target(str(spec.get("bucket") or ""), str(spec.get("prefix") or ""),
                        spec.get("endpoint_url"), spec.get("access_key"),
                        spec.get("secret_key"), spec.get("region"))
    raise InvalidArgument(f"a backup target's kind is directory or s3, not {kind!r}")


@dataclass
class BackupResult:
    name: str
    size: int
    sha256: str
    tree: str
    deleted: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.name, "size": self.size, "sha256": self.sha256,
                "tree": self.tree, "deleted": self.deleted}


@contextmanager
def _scratch_file(directory: Path) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, name = tempfile.mkstemp(dir=directory, suffix=".tar.zst")
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def back_up(store: Any, volume: str, target: Target, keep_daily: int, keep_weekly: int,
            scratch: Path, now: datetime | None = None) -> BackupResult:
    """Archive `volume` to `target`, then delete what the retention rule does not keep."""
    try:  # a rule that keeps nothing fails before any work
        backups_to_keep([], keep_daily, keep_weekly)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    name = moment.strftime(STAMP) + ".tar.zst"
    with _scratch_file(scratch) as file:
        size = store.backup(volume, file)
        tree = tree_digest(store.get(volume).mountpoint)
        sha256 = file_sha256(file)
        try:
            target.put(volume, name, file, sha256, tree)
        except Exception as exc:
            raise BackupFailed(f"could not store the backup of {volume}: {exc}") from exc
    stored = target.list(volume)
    keep = backups_to_keep([s.taken_at for s in stored], keep_daily, keep_weekly)
    deleted = [s.name for s in stored if s.taken_at not in keep]
    for old in deleted:
        target.delete(volume, old)
    return BackupResult(name, size, sha256, tree, deleted)


def drill(store: Any, volume: str, target: Target, scratch: Path) -> dict[str, Any]:
    """Restore the newest backup of `volume` into a scratch volume and prove it byte-exact."""
    stored = target.list(volume)
    if not stored:
        raise BackupFailed(f"volume {volume} has no backup at this target yet")
    newest = stored[-1]
    drill_volume = f"{volume}-drill"[:64]
    with _scratch_file(scratch) as file:
        target.get(volume, newest.name, file)
        sha256 = file_sha256(file)
        if sha256 != newest.sha256:
            raise BackupFailed(f"backup {newest.name} of {volume} is damaged: its sha256 is "
                               f"{sha256}, {newest.sha256} was recorded")
        try:
            store.restore(drill_volume, file)
            tree = tree_digest(store.get(drill_volume).mountpoint)
        finally:
            if store.exists(drill_volume):
                store.remove(drill_volume, force=True)
    if tree != newest.tree:
        raise BackupFailed(f"backup {newest.name} of {volume} restored different content: "
                           f"tree {tree}, {newest.tree} was recorded")
    return {"backup": newest.name, "sha256": sha256, "tree": tree, "byte_exact": True}
