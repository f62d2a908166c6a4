"""Image archives in and out: OCI image layouts and `docker save` archives, as tar streams.

Import reads the archive once, front to back, without extracting it anywhere:

1. every regular file is hashed as it streams past; files under `blobs/sha256/` must match the
   digest in their name, small JSON files stay in memory, anything else (a `docker save`
   layer.tar) is spooled into the store's temporary directory, hashed on the way;
2. at the end of the stream the format is decided: `index.json` makes it an OCI layout (nested
   indexes are followed, choosing this host's platform), else `manifest.json` a `docker save`
   archive (whose layer files hash to their diff ids and whose config is named by its digest);
3. inside `ImageStore.ingesting()`, the blobs each image needs move into the store (a rename,
   same filesystem), the layers are unpacked, and the image goes into the index. Any failure
   removes what this import added, so nothing is left half-imported.

Export writes an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/…`) that skopeo and
podman read, plus docker's `manifest.json` so that `docker load` takes it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runtime.errors import DigestMismatch, ImageError, InvalidArgument
from runtime.images.reference import parse_reference
from runtime.images.store import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
    Image,
    ImageStore,
    Ingest,
    check_digest,
    host_architecture,
    normalise_tag,
)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
_METADATA_NAMES = {"index.json", "manifest.json", "oci-layout", "repositories", "json", "VERSION"}
_METADATA_LIMIT = 16 << 20
_BLOB_NAME = re.compile(r"^blobs/(?P<algorithm>[a-z0-9]+)/(?P<hex>[^/]+)$")
_CONFIG_NAME = re.compile(r"^(?:.*/)?(?P<hex>[a-f0-9]{64})(?:\.json)?$")
_LINK_HOPS = 16
_CHUNK = 1 << 20
_LAYER_MEDIA_TYPES = {
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
_INDEX_MEDIA_TYPES = {MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST}
_MANIFEST_MEDIA_TYPES = {MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST}


# -- import ------------------------------------------------------------------------------------

@dataclass
class _Entry:
    """One regular file of the archive: in memory (`data`) or spooled to `path`."""

    name: str
    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None
    head: bytes = b""


@dataclass
class _Candidate:
    """An image found in the archive, ready to be committed to the store."""

    manifest: dict[str, Any]
    manifest_bytes: bytes
    names: list[str]
    blobs: list[tuple[str, str]] = field(default_factory=list)  # (digest, archive entry)


def import_archive(store: ImageStore, source: Path | str | IO[bytes],
                   tag: str | None = None) -> list[Image]:
    """Import every image of an OCI or `docker save` archive (plain or gzip-compressed tar).

    `tag` replaces the archive's own names and is only allowed for an archive of one image.
    Returns the imported images. Raises ImageError (UnsafeArchive, DigestMismatch) naming the
    archive or layer entry at fault; the store is then as it was before."""
    if tag is not None:
        tag = normalise_tag(tag)
    store.tmp_dir.mkdir(parents=True, exist_ok=True)
    staging = store.tmp_dir / f"import-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        with _open_source(source) as stream:
            reader = _ArchiveReader(staging)
            reader.read(stream)
        candidates = _merge_duplicates(reader.images())
        if not candidates:
            raise ImageError("the archive holds no image manifests")
        if tag is not None:
            if len(candidates) != 1:
                raise InvalidArgument(
                    f"--tag needs an archive with one image; this one has {len(candidates)}"
                )
            candidates[0].names = [tag]
        names = [_names_for(candidate) for candidate in candidates]
        with store.ingesting() as ingest:
            manifest_digests = [_store_blobs(store, ingest, reader, candidate)
                                for candidate in candidates]
            return ingest.add_images([
                (candidate.manifest, digest, tags)
                for candidate, digest, tags in zip(candidates, manifest_digests, names,
                                                   strict=True)
            ])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _open_source(source: Path | str | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as f:
                yield f
        except FileNotFoundError:
            raise ImageError(f"archive {str(source)!r} does not exist") from None
        except IsADirectoryError:
            raise ImageError(f"archive {str(source)!r} is a directory; give a tar file") from None
    else:
        yield source


def _merge_duplicates(candidates: list[_Candidate]) -> list[_Candidate]:
    """One candidate per manifest: an index may list a manifest once per name."""
    merged: dict[bytes, _Candidate] = {}
    for candidate in candidates:
        first = merged.setdefault(candidate.manifest_bytes, candidate)
        if first is not candidate:
            first.names += [name for name in candidate.names if name not in first.names]
    return list(merged.values())


def _names_for(candidate: _Candidate) -> list[str]:
    try:
        return [normalise_tag(_short_name(name)) for name in candidate.names]
    except InvalidArgument as exc:
        raise ImageError(f"the archive names an image badly: {exc}") from None


def _store_blobs(store: ImageStore, ingest: Ingest, reader: _ArchiveReader,
                 candidate: _Candidate) -> str:
    """Move the candidate's blobs into the store; returns its manifest digest."""
    for digest, entry_name in candidate.blobs:
        if store.has_blob(digest):
            continue
        entry = reader.entry(entry_name)
        if entry.path is not None and entry.path.exists():
            ingest.adopt_blob_file(entry.path, digest)
        elif entry.data is not None:
            ingest.put_blob_bytes(entry.data, digest)
        else:
            raise ImageError(f"archive entry {entry_name!r} was needed twice and is gone")
    return ingest.put_blob_bytes(candidate.manifest_bytes)


class _ArchiveReader:
    """Reads the outer archive once and keeps what the image formats need."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.entries: dict[str, _Entry] = {}
        self.links: dict[str, str] = {}
        self.by_digest: dict[str, str] = {}

    # -- streaming -------------------------------------------------------------------------
    def read(self, stream: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                for member in archive:
                    self._add(member, archive)
        except tarfile.TarError as exc:
            raise ImageError(f"the archive is not a readable tar file: {exc}") from None
        except EOFError:
            raise ImageError("the archive is truncated") from None

    def _add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        name = _normalise(member.name)
        if not name:
            return
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            if member.linkname.startswith("/"):
                raise ImageError(
                    f"archive entry {member.name!r} links to the absolute path "
                    f"{member.linkname!r}; links must stay inside the archive"
                )
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if target == ".." or target.startswith("../"):
                raise ImageError(
                    f"archive entry {member.name!r} links to {member.linkname!r}, outside the "
                    "archive; refused"
                )
            self._forget(name)
            self.links[name] = target
            return
        if not member.isreg():
            return  # directories; nothing else in an image archive matters
        source = archive.extractfile(member)
        assert source is not None
        self._forget(name)
        blob_match = _BLOB_NAME.match(name)
        if blob_match and blob_match["algorithm"] != "sha256":
            raise ImageError(
                f"archive entry {name!r} uses digest algorithm {blob_match['algorithm']!r}; "
                "only sha256 is supported"
            )
        keep_in_memory = not blob_match and (
            posixpath.basename(name) in _METADATA_NAMES or name.endswith(".json")
        ) and member.size <= _METADATA_LIMIT
        if keep_in_memory:
            data = source.read()
            entry = _Entry(name=name, digest=_sha256(data), size=len(data), data=data,
                           head=data[:8])
        else:
            entry = self._spool(name, source)
        if blob_match:
            expected = f"sha256:{blob_match['hex']}"
            if entry.digest != expected:
                raise DigestMismatch(
                    f"archive entry {name!r} does not match its digest: its content hashes to "
                    f"{entry.digest}; the archive is corrupt or was tampered with"
                )
        self.entries[name] = entry
        self.by_digest.setdefault(entry.digest, name)

    def _spool(self, name: str, source: IO[bytes]) -> _Entry:
        hasher = hashlib.sha256()
        size = 0
        head = b""
        fd, tmp = tempfile.mkstemp(dir=self.staging, prefix="entry-")
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                if not head:
                    head = chunk[:8]
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return _Entry(name=name, digest="sha256:" + hasher.hexdigest(), size=size,
                      path=Path(tmp), head=head)

    def _forget(self, name: str) -> None:
        """A later entry of the same name replaces the earlier one, as tar extraction would."""
        old = self.entries.pop(name, None)
        self.links.pop(name, None)
        if old is not None:
            if old.path is not None:
                old.path.unlink(missing_ok=True)
            if self.by_digest.get(old.digest) == name:
                del self.by_digest[old.digest]

    # -- lookups ---------------------------------------------------------------------------
    def entry(self, name: str) -> _Entry:
        """The regular file `name` refers to, following links inside the archive."""
        current = _normalise(name)
        for _ in range(_LINK_HOPS):
            if current in self.entries:
                return self.entries[current]
            if current not in self.links:
                raise ImageError(f"the archive has no entry {name!r}")
            current = self.links[current]
        raise ImageError(f"archive entry {name!r} is a chain of too many links")

    def has(self, name: str) -> bool:
        try:
            self.entry(name)
        except ImageError:
            return False
        return True

    def bytes_of(self, name: str) -> bytes:
        entry = self.entry(name)
        if entry.data is not None:
            return entry.data
        assert entry.path is not None
        if entry.size > _METADATA_LIMIT:
            raise ImageError(f"archive entry {name!r} is too large for a manifest or config")
        return entry.path.read_bytes()

    def json_of(self, name: str) -> Any:
        try:
            return json.loads(self.bytes_of(name))
        except ValueError as exc:
            raise ImageError(f"archive entry {name!r} is not valid JSON: {exc}") from None

    def blob_entry_name(self, digest: str) -> str:
        check_digest(digest)
        name = f"blobs/sha256/{digest[7:]}"
        if self.has(name):
            return name
        raise ImageError(f"the archive is missing blob {digest}")

    # -- formats ---------------------------------------------------------------------------
    def images(self) -> list[_Candidate]:
        if self.has("index.json"):
            return self._oci_images()
        if self.has("manifest.json"):
            return self._docker_images()
        raise ImageError(
            "the archive is neither an OCI image layout (no index.json) nor a `docker save` "
            "archive (no manifest.json)"
        )

    def _oci_images(self) -> list[_Candidate]:
        if self.has("oci-layout"):
            layout = self.json_of("oci-layout")
            version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
            if version != "1.0.0":
                raise ImageError(f"unsupported OCI image layout version {version!r}; need 1.0.0")
        index = self.json_of("index.json")
        docker_names = self._docker_repo_tags()
        found: list[_Candidate] = []
        for descriptor, names in self._resolve(index, "index.json"):
            digest = descriptor["digest"]
            data = self._blob_bytes(descriptor, f"manifest {digest}")
            manifest = _parse_json(data, f"manifest {digest}")
            _check_manifest(manifest, digest)
            config_digest = manifest["config"]["digest"]
            if not names:
                names = docker_names.get(config_digest, [])
            candidate = _Candidate(manifest=manifest, manifest_bytes=data, names=names)
            self._collect_blobs(candidate)
            found.append(candidate)
        return found

    def _resolve(self, index: Any, where: str) -> list[tuple[dict[str, Any], list[str]]]:
        """Image manifests an index points at, with the names its annotations give them."""
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageError(f"{where} is not an image index: it has no `manifests` list")
        descriptors = [d for d in index["manifests"] if isinstance(d, dict)]
        for descriptor in descriptors:
            _check_descriptor(descriptor, where)
        with_platform = [d for d in descriptors if d.get("platform")]
        if with_platform:
            descriptors = _choose_platform(descriptors, where)
        resolved: list[tuple[dict[str, Any], list[str]]] = []
        for descriptor in descriptors:
            names = _names_from(descriptor.get("annotations") or {})
            what = f"index {descriptor['digest']}"
            media_type = descriptor.get("mediaType")
            nested = None
            if media_type in _INDEX_MEDIA_TYPES:
                nested = _parse_json(self._blob_bytes(descriptor, what), what)
            elif media_type is None:  # optional in old layouts: look at the blob itself
                content = _parse_json(self._blob_bytes(descriptor, what), what)
                nested = content if isinstance(content, dict) and "manifests" in content else None
            if nested is not None:
                for child, child_names in self._resolve(nested, what):
                    resolved.append((child, names or child_names))
            else:
                resolved.append((descriptor, names))
        return resolved

    def _docker_repo_tags(self) -> dict[str, list[str]]:
        """Config digest -> RepoTags from a docker 25+ archive's manifest.json, if present."""
        if not self.has("manifest.json"):
            return {}
        found: dict[str, list[str]] = {}
        listing = self.json_of("manifest.json")
        for item in listing if isinstance(listing, list) else []:
            if isinstance(item, dict) and isinstance(item.get("Config"), str):
                match = _CONFIG_NAME.match(item["Config"])
                if match:
                    found[f"sha256:{match['hex']}"] = list(item.get("RepoTags") or [])
        return found

    def _blob_bytes(self, descriptor: dict[str, Any], what: str) -> bytes:
        digest = descriptor["digest"]
        data = self.bytes_of(self.blob_entry_name(digest))
        size = descriptor.get("size")
        if size is not None and size != len(data):
            raise DigestMismatch(f"{what} is {len(data)} bytes, but its descriptor says {size}")
        return data

    def _collect_blobs(self, candidate: _Candidate) -> None:
        manifest = candidate.manifest
        wanted = [("config", manifest["config"])] + [
            (f"layer {i + 1}", layer) for i, layer in enumerate(manifest["layers"])
        ]
        for what, descriptor in wanted:
            digest = descriptor["digest"]
            entry_name = self.blob_entry_name(digest)
            entry = self.entry(entry_name)
            if descriptor.get("size") is not None and descriptor["size"] != entry.size:
                raise DigestMismatch(
                    f"archive entry {entry_name!r} ({what}) is {entry.size} bytes, but the "
                    f"manifest says {descriptor['size']}"
                )
            candidate.blobs.append((digest, entry_name))

    def _docker_images(self) -> list[_Candidate]:
        listing = self.json_of("manifest.json")
        if not isinstance(listing, list):
            raise ImageError("manifest.json of a `docker save` archive must be a JSON list")
        found = []
        for position, item in enumerate(listing, start=1):
            where = f"manifest.json image {position}"
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                    or not isinstance(item.get("Layers"), list):
                raise ImageError(f"{where} needs `Config` (a path) and `Layers` (a list)")
            config_name = _normalise(item["Config"])
            config_entry = self.entry(config_name)
            match = _CONFIG_NAME.match(config_name)
            if match and config_entry.digest != f"sha256:{match['hex']}":
                raise DigestMismatch(
                    f"archive entry {config_name!r} (image config) hashes to "
                    f"{config_entry.digest}, not the digest in its name"
                )
            config = _parse_json(self.bytes_of(config_name), f"archive entry {config_name!r}")
            diff_ids = ((config.get("rootfs") or {}).get("diff_ids") or []) \
                if isinstance(config, dict) else []
            if len(diff_ids) != len(item["Layers"]):
                raise ImageError(
                    f"{where}: the config lists {len(diff_ids)} diff ids but there are "
                    f"{len(item['Layers'])} layers"
                )
            candidate = _Candidate(manifest={}, manifest_bytes=b"",
                                   names=list(item.get("RepoTags") or []))
            candidate.blobs.append((config_entry.digest, config_name))
            layers = []
            for layer_name, diff_id in zip(item["Layers"], diff_ids, strict=True):
                entry_name = _normalise(str(layer_name))
                entry = self.entry(entry_name)
                media_type = _layer_media_type(entry.head)
                if media_type == MEDIA_OCI_LAYER and entry.digest != diff_id:
                    raise DigestMismatch(
                        f"archive entry {entry_name!r} (layer) hashes to {entry.digest}, but the "
                        f"image config lists diff id {diff_id}"
                    )
                layers.append({"mediaType": media_type, "digest": entry.digest,
                               "size": entry.size})
                candidate.blobs.append((entry.digest, entry_name))
            manifest = {
                "schemaVersion": 2,
                "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_entry.digest,
                           "size": config_entry.size},
                "layers": layers,
            }
            candidate.manifest = manifest
            candidate.manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
            found.append(candidate)
        return found


def _normalise(name: str) -> str:
    """Archive member names compare without leading `./` or `/` and without `.` parts."""
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    return "" if cleaned == "." else cleaned


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what} is not valid JSON: {exc}") from None


def _layer_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return MEDIA_OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return MEDIA_OCI_LAYER_ZSTD
    return MEDIA_OCI_LAYER


def _check_descriptor(descriptor: dict[str, Any], where: str) -> None:
    if not isinstance(descriptor.get("digest"), str):
        raise ImageError(f"{where} has a descriptor without a digest")
    check_digest(descriptor["digest"])


def _check_manifest(manifest: Any, digest: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise ImageError(
            f"manifest {digest} is not an OCI or Docker v2 schema 2 image manifest"
        )
    media_type = manifest.get("mediaType")
    if media_type is not None and media_type not in _MANIFEST_MEDIA_TYPES:
        raise ImageError(f"manifest {digest} has media type {media_type!r}, not an image manifest")
    config = manifest.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise ImageError(f"manifest {digest} has no config descriptor")
    check_digest(config["digest"])
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ImageError(f"manifest {digest} has no layers list")
    for position, layer in enumerate(layers, start=1):
        _check_descriptor(layer, f"manifest {digest} layer {position}")
        layer_type = layer.get("mediaType", MEDIA_OCI_LAYER)
        if layer_type not in _LAYER_MEDIA_TYPES:
            raise ImageError(
                f"manifest {digest} layer {position} has media type {layer_type!r}; supported: "
                "tar, tar+gzip and tar+zstd layers (OCI or Docker)"
            )


def _choose_platform(descriptors: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The one manifest of a multi-platform index that runs here (linux/<this arch>)."""
    arch = host_architecture()
    for descriptor in descriptors:
        platform = descriptor.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return [descriptor]
    offered = sorted({
        f"{(d.get('platform') or {}).get('os')}/{(d.get('platform') or {}).get('architecture')}"
        for d in descriptors
    })
    raise ImageError(f"{where} has no image for linux/{arch}; it offers {', '.join(offered)}")


def _names_from(annotations: dict[str, Any]) -> list[str]:
    """Image names from descriptor annotations: containerd's full name, else the OCI ref name
    (a bare word such as `busybox` counts as a name with the tag `latest`)."""
    for key in (ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            return [_short_name(value)]
    return []


def _short_name(name: str) -> str:
    """Docker Hub names as people type them: docker.io/library/busybox:1 -> busybox:1."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


# -- export ------------------------------------------------------------------------------------

def export_archive(store: ImageStore, refs: Sequence[str],
                   destination: Path | str | IO[bytes]) -> None:
    """Write the images `refs` as one OCI archive (with docker's manifest.json as well).

    A file destination appears only when complete; a stream is written as it goes."""
    if not refs:
        raise InvalidArgument("name at least one image to export")
    plan = [_export_plan(store, ref) for ref in refs]
    if isinstance(destination, (str, Path)):
        target = Path(destination)
        if target.is_dir():
            raise InvalidArgument(f"{str(target)!r} is a directory; give a file name to write")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                _write_archive(store, plan, out)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        _write_archive(store, plan, destination)


@dataclass
class _ExportItem:
    image: Image
    names: list[str]
    manifest_bytes: bytes
    media_type: str


def _export_plan(store: ImageStore, ref: str) -> _ExportItem:
    image = store.get(ref)
    try:
        named = normalise_tag(ref)
    except InvalidArgument:
        named = None
    names = [named] if named in image.tags else list(image.tags)
    manifest_bytes = store.read_blob(image.manifest_digest)
    manifest = json.loads(manifest_bytes)
    for layer in image.layers:
        if not store.has_blob(layer.digest):
            raise ImageError(
                f"layer blob {layer.digest} of image {ref!r} is not in the store (only its "
                "unpacked directory is), so it cannot be exported; pull or import it again"
            )
    return _ExportItem(image=image, names=names, manifest_bytes=manifest_bytes,
                       media_type=manifest.get("mediaType") or MEDIA_OCI_MANIFEST)


def _write_archive(store: ImageStore, plan: list[_ExportItem], out: IO[bytes]) -> None:
    index_entries = []
    docker_manifest = []
    for item in plan:
        descriptor = {"mediaType": item.media_type, "digest": _sha256(item.manifest_bytes),
                      "size": len(item.manifest_bytes)}
        if item.names:
            for name in item.names:
                reference = parse_reference(name)
                full = reference.repository if reference.domain \
                    else f"docker.io/{reference.remote_path}"
                index_entries.append({**descriptor, "annotations": {
                    ANNOTATION_REF_NAME: name,
                    ANNOTATION_CONTAINERD_NAME: f"{full}:{reference.tag}",
                }})
        else:
            index_entries.append(descriptor)
        docker_manifest.append({
            "Config": f"blobs/sha256/{check_digest(item.image.id)}",
            "RepoTags": item.names,
            "Layers": [f"blobs/sha256/{check_digest(layer.digest)}"
                       for layer in item.image.layers],
        })
    index = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": index_entries}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_bytes(archive, "index.json", json.dumps(index, indent=2).encode())
        _add_bytes(archive, "manifest.json", json.dumps(docker_manifest, indent=2).encode())
        _add_dir(archive, "blobs")
        _add_dir(archive, "blobs/sha256")
        written: set[str] = set()
        for item in plan:
            manifest_digest = _sha256(item.manifest_bytes)
            if manifest_digest not in written:
                written.add(manifest_digest)
                _add_bytes(archive, f"blobs/sha256/{manifest_digest[7:]}", item.manifest_bytes)
            for digest in [item.image.id, *(layer.digest for layer in item.image.layers)]:
                if digest in written:
                    continue
                written.add(digest)
                path = store.blob_path(digest)
                info = tarfile.TarInfo(f"blobs/sha256/{check_digest(digest)}")
                info.size = path.stat().st_size
                info.mode = 0o644
                with open(path, "rb") as blob:
                    archive.addfile(info, blob)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _add_dir(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    archive.addfile(info)
