"""Small filesystem helpers shared by the runtime's stores: atomic JSON files and file locks."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` so that readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold an flock on `path` (created if needed) for the duration of the block.

    Used to serialise writers of one store across processes (two `berth-runtime` commands, or the
    agent and the CLI)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def try_lock(path: Path) -> int | None:
    """Take an exclusive flock on `path` (created if needed) without waiting: the open file
    descriptor, which holds the lock until closed, or None when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_tree(path: Path) -> None:
    """Remove a directory tree, tolerating its absence."""
    shutil.rmtree(path, ignore_errors=False) if path.exists() else None


def file_sha256(path: Path, chunk: int = 1024 * 1024) -> str:
    """The sha256 (hex) of the file at `path`, read in pieces of `chunk` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(chunk):
            digest.update(piece)
    return digest.hexdigest()
