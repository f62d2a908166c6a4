"""Turning a directory tree into an image in the store: one layer, an OCI config and manifest.

Used by `image bootstrap` and by tests that need small images of their own."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.images.store import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    Image,
    ImageStore,
    sha256_digest,
)


def tar_directory(source: Path) -> bytes:
    """A reproducible, uncompressed tar of `source` (sorted names, numeric owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(source.rglob("*")):
            relname = path.relative_to(source).as_posix()
            info = archive.gettarinfo(str(path), arcname=relname)
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)
    return buffer.getvalue()


def image_from_layers(store: ImageStore, layers: Sequence[bytes], config: dict[str, Any],
                      tags: Sequence[str] = (), history: Sequence[str] = ()) -> Image:
    """Store uncompressed layer tars plus an image config built around `config` (the runtime
    part: Cmd, Env…) and register the image under `tags`."""
    diff_ids = []
    descriptors = []
    for layer in layers:
        digest = store.put_blob_bytes(layer)
        diff_ids.append(digest)
        descriptors.append({"mediaType": MEDIA_OCI_LAYER, "digest": digest, "size": len(layer)})
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    image_config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": h} for h in history]
        or [{"created": created, "created_by": "berth"} for _ in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_digest = store.put_blob_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest,
                   "size": len(config_bytes)},
        "layers": descriptors,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = store.put_blob_bytes(manifest_bytes)
    assert manifest_digest == sha256_digest(manifest_bytes)
    return store.add_image(manifest, manifest_digest, tags)
