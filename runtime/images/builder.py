"""Turning directory trees into an image in the store: layers, an OCI config and a manifest.

Used by `image bootstrap` and by tests that need small images of their own."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from runtime.images.store import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    Image,
    ImageStore,
    Ingest,
    host_architecture,
)


def write_directory_tar(source: Path, out: IO[bytes]) -> None:
    """Write a reproducible, uncompressed tar of `source` to `out` (sorted names, numeric owners).

    Device nodes and sockets are left out: the runtime gives each container its own /dev, and
    layers with device nodes are refused on import."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(source.rglob("*")):
            mode = os.lstat(path).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
                continue
            relname = path.relative_to(source).as_posix()
            info = archive.gettarinfo(str(path), arcname=relname)
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)


def tar_directory(source: Path) -> bytes:
    """The tar of `source` as `write_directory_tar` makes it, in memory (small trees only)."""
    buffer = io.BytesIO()
    write_directory_tar(source, buffer)
    return buffer.getvalue()


def image_from_directories(store: ImageStore, trees: Sequence[Path], config: dict[str, Any],
                           tags: Sequence[str] = (), history: Sequence[str] = ()) -> Image:
    """Make one layer per directory in `trees` (base first), streaming each tar into the store
    through a temporary file so large trees never sit in memory."""
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    layers: list[tuple[str, int]] = []
    with store.ingesting() as ingest:
        for tree in trees:
            with tempfile.TemporaryFile(dir=store.tmp_dir, prefix="layer-") as spool:
                write_directory_tar(tree, spool)  # type: ignore[arg-type]
                spool.seek(0)
                layers.append(ingest.put_blob(spool))  # type: ignore[arg-type]
        return _register(store, ingest, layers, config, tags, history)


def image_from_layers(store: ImageStore, layers: Sequence[bytes], config: dict[str, Any],
                      tags: Sequence[str] = (), history: Sequence[str] = ()) -> Image:
    """Store uncompressed layer tars plus an image config built around `config` (the runtime
    part: Cmd, Env…) and register the image under `tags`."""
    with store.ingesting() as ingest:
        stored = [(ingest.put_blob_bytes(layer), len(layer)) for layer in layers]
        return _register(store, ingest, stored, config, tags, history)


def _register(store: ImageStore, ingest: Ingest, layers: Sequence[tuple[str, int]],
              config: dict[str, Any], tags: Sequence[str], history: Sequence[str]) -> Image:
    """Write config and manifest for uncompressed layers (digest = diff id) and add the image."""
    diff_ids = [digest for digest, _size in layers]
    descriptors = [{"mediaType": MEDIA_OCI_LAYER, "digest": digest, "size": size}
                   for digest, size in layers]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    image_config = {
        "created": created,
        "architecture": host_architecture(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": h} for h in history]
        or [{"created": created, "created_by": "berth"} for _ in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = ingest.put_blob_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest,
                   "size": len(config_bytes)},
        "layers": descriptors,
    }
    manifest_digest = ingest.put_blob_bytes(json.dumps(manifest, sort_keys=True).encode())
    return ingest.add_image(manifest, manifest_digest, tags)
