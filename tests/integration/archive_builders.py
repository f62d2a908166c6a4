"""Image archives built by hand with tarfile, for the image import and unpack tests.

    base = layer(directory("a"), file("a/1", b"one"))
    top = layer(whiteout("a/1"), compression="gzip")
    write_docker_save(path, [ImageSpec([base, top], tags=["app:1"])])
    write_oci_archive(path, [ImageSpec([base, top], tags=["app:1"])])
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

Member = tuple[tarfile.TarInfo, bytes | None]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    return info


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    return info, data


def directory(name: str, mode: int = 0o755) -> Member:
    return _info(name, tarfile.DIRTYPE, mode), None


def symlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def device(name: str, kind: bytes = tarfile.CHRTYPE, major: int = 1, minor: int = 3) -> Member:
    info = _info(name, kind, 0o666)
    info.devmajor, info.devminor = major, minor
    return info, None


def whiteout(path: str) -> Member:
    """The OCI whiteout hiding `path` of a lower layer."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(directory_path: str) -> Member:
    """The OCI marker that hides everything below `directory_path` in lower layers."""
    return file(f"{directory_path}/.wh..wh..opq")


@dataclass
class Layer:
    raw: bytes  # the uncompressed tar: its digest is the diff id
    blob: bytes  # as stored in the archive (maybe compressed)

    @property
    def diff_id(self) -> str:
        return sha256(self.raw)

    @property
    def digest(self) -> str:
        return sha256(self.blob)

    @property
    def media_type(self) -> str:
        if self.blob[:2] == b"\x1f\x8b":
            return "application/vnd.oci.image.layer.v1.tar+gzip"
        if self.blob[:4] == b"\x28\xb5\x2f\xfd":
            return "application/vnd.oci.image.layer.v1.tar+zstd"
        return "application/vnd.oci.image.layer.v1.tar"


def layer(*members: Member, compression: str | None = None) -> Layer:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    if compression == "gzip":
        blob = gzip.compress(raw, mtime=0)
    elif compression == "zstd":
        blob = zstandard.ZstdCompressor().compress(raw)
    else:
        blob = raw
    return Layer(raw=raw, blob=blob)


@dataclass
class ImageSpec:
    layers: list[Layer]
    tags: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=lambda: ["sh"])
    architecture: str = "amd64"

    def config(self) -> bytes:
        return json.dumps({
            "architecture": self.architecture,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": self.cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in self.layers]},
            "history": [{"created_by": "test"} for _ in self.layers],
        }, sort_keys=True).encode()

    @property
    def image_id(self) -> str:
        return sha256(self.config())

    def manifest(self) -> bytes:
        config = self.config()
        return json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": lay.media_type, "digest": lay.digest, "size": len(lay.blob)}
                       for lay in self.layers],
        }, sort_keys=True).encode()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _add_symlink(archive: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def write_docker_save(path: Path, images: list[ImageSpec],
                      replace: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """A `docker save` archive as docker before v25 wrote it: one directory per layer with a
    layer.tar (a symlink to the first copy when a layer repeats), `<config hex>.json`,
    manifest.json and repositories. `replace` swaps the content of named entries (tampering).
    Returns the manifest.json listing."""
    replace = replace or {}
    listing: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: dict[str, str] = {}
    with tarfile.open(path, "w") as archive:
        for image in images:
            layer_names = []
            for lay in image.layers:
                layer_dir = hashlib.sha256((lay.diff_id + image.image_id).encode()).hexdigest()
                name = f"{layer_dir}/layer.tar"
                if lay.diff_id in written:
                    _add_symlink(archive, name, f"../{written[lay.diff_id]}")
                else:
                    _add(archive, name, replace.get(name, lay.blob))
                    written[lay.diff_id] = name
                _add(archive, f"{layer_dir}/VERSION", b"1.0")
                layer_names.append(name)
            config_name = f"{image.image_id[7:]}.json"
            _add(archive, config_name, replace.get(config_name, image.config()))
            listing.append({"Config": config_name, "RepoTags": image.tags,
                            "Layers": layer_names})
            for tag in image.tags:
                repo, _, version = tag.rpartition(":")
                repositories.setdefault(repo, {})[version] = layer_names[-1].split("/")[0]
        _add(archive, "manifest.json", json.dumps(listing).encode())
        _add(archive, "repositories", json.dumps(repositories).encode())
    return listing


def write_oci_archive(path: Path, images: list[ImageSpec], nested_index: bool = False,
                      replace: dict[str, bytes] | None = None,
                      ref_annotation: str = "org.opencontainers.image.ref.name") -> None:
    """An OCI image layout as a tar (what `skopeo copy … oci-archive:` writes). With
    `nested_index`, index.json points at a multi-platform index whose arm64 entry is bogus and
    whose amd64 entry is the image. `replace` swaps the content of named entries."""
    replace = replace or {}
    blobs: dict[str, bytes] = {}
    descriptors = []
    for image in images:
        manifest = image.manifest()
        blobs[sha256(manifest)] = manifest
        blobs[image.image_id] = image.config()
        for lay in image.layers:
            blobs[lay.digest] = lay.blob
        descriptor: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest), "size": len(manifest),
        }
        if nested_index:
            other = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "digest": "sha256:" + "0" * 64, "size": 10,
                     "platform": {"os": "linux", "architecture": "arm64"}}
            descriptor["platform"] = {"os": "linux", "architecture": "amd64"}
            nested = json.dumps({"schemaVersion": 2,
                                 "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": [other, descriptor]}).encode()
            blobs[sha256(nested)] = nested
            descriptor = {"mediaType": "application/vnd.oci.image.index.v1+json",
                          "digest": sha256(nested), "size": len(nested)}
        for tag in image.tags or [None]:
            entry = dict(descriptor)
            if tag:
                entry["annotations"] = {ref_annotation: tag}
            descriptors.append(entry)
    index = {"schemaVersion": 2, "manifests": descriptors}
    with tarfile.open(path, "w") as archive:
        # Blobs first, index last, as skopeo writes them: the importer must not rely on order.
        for digest, data in blobs.items():
            name = f"blobs/sha256/{digest[7:]}"
            _add(archive, name, replace.get(name, data))
        _add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(archive, "index.json", json.dumps(index).encode())
