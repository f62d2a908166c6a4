"""The image store: content-addressed blobs, unpacked layers, and the image index with its tags.

Layout under the runtime root:

    images/blobs/sha256/<hex>     every manifest, config and layer blob, verified on the way in
    images/index.json             image id -> manifest/config/layers/tags (one file, one lock)
    layers/<diff-id hex>/diff     each layer unpacked once, shared by every image that has it

An image's id is the digest of its config, as in Docker. A layer directory exists exactly as long
as some image in the index lists its diff id.

Imports and pulls go through `ImageStore.ingesting()`: blobs and layers they add are removed
again if they fail, and garbage collection leaves the store alone while any of them runs (it
would otherwise free blobs that are written but not yet listed in the index).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runtime import fsutil
from runtime.errors import Conflict, DigestMismatch, ImageError, InvalidArgument, NotFound
from runtime.images.reference import parse_reference

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_CHUNK = 1 << 20


def host_architecture() -> str:
    """This machine's architecture in OCI/Go spelling (amd64, arm64…)."""
    import platform

    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x"}.get(machine, machine)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Return the hex part of a sha256 digest, refusing anything else (it becomes a file name)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ImageError(f"unsupported or malformed digest {digest!r}: expected sha256:<64 hex>")
    return hexpart


@dataclass
class LayerRecord:
    digest: str  # digest of the blob as stored (maybe compressed)
    diff_id: str  # digest of the uncompressed tar
    media_type: str
    size: int


@dataclass
class Image:
    id: str  # config digest
    manifest_digest: str
    config: dict[str, Any]
    layers: list[LayerRecord]
    tags: list[str] = field(default_factory=list)
    created: float = 0.0
    layer_root: Path = Path("/nonexistent")

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def runtime_config(self) -> dict[str, Any]:
        """The `config` section of the image config (Entrypoint, Cmd, Env…), never None."""
        return self.config.get("config") or {}

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def layer_dirs(self) -> list[Path]:
        """Unpacked layer directories, lowest (base) layer first."""
        return [self.layer_root / check_digest(layer.diff_id) / "diff" for layer in self.layers]

    def inspect(self) -> dict[str, Any]:
        """The image as `docker image inspect` prints it (one element of its list)."""
        repositories = sorted({tag.rsplit(":", 1)[0] for tag in self.tags})
        layer_dirs = [str(d) for d in self.layer_dirs()]
        return {
            "Id": self.id,
            "RepoTags": list(self.tags),
            "RepoDigests": [f"{repo}@{self.manifest_digest}" for repo in repositories],
            "Parent": "",
            "Comment": "",
            "Created": self.config.get("created") or time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "DockerVersion": self.config.get("docker_version", ""),
            "Author": self.config.get("author", ""),
            "Config": self.runtime_config,
            "Architecture": self.config.get("architecture", ""),
            "Variant": self.config.get("variant", ""),
            "Os": self.config.get("os", ""),
            "Size": self.size,
            "GraphDriver": {
                "Name": "overlay",
                "Data": {"LowerDir": ":".join(reversed(layer_dirs))},
            },
            "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in self.layers]},
            "Metadata": {"LastTagTime": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))},
            "ManifestDigest": self.manifest_digest,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "manifest_digest": self.manifest_digest,
            "config": self.config,
            "layers": [vars(layer) for layer in self.layers],
            "tags": self.tags,
            "created": self.created,
        }


class ImageStore:
    """All images of one runtime root. Safe to use from several processes at once."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.blob_dir = self.root / "images" / "blobs" / "sha256"
        self.layer_root = self.root / "layers"
        self.index_path = self.root / "images" / "index.json"
        self.lock_path = self.root / "images" / ".lock"
        self.tmp_dir = self.root / "images" / "tmp"
        self.ingest_lock_path = self.root / "images" / ".ingest.lock"

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blob_dir / check_digest(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def put_blob(self, stream: IO[bytes], expected_digest: str | None = None,
                 expected_size: int | None = None) -> tuple[str, int]:
        """Copy `stream` into the store, verifying it against `expected_digest` when given.

        The blob becomes visible only once complete and verified; a mismatch leaves nothing."""
        digest, size, _created = self._put_blob(stream, expected_digest, expected_size)
        return digest, size

    def _put_blob(self, stream: IO[bytes], expected_digest: str | None,
                  expected_size: int | None) -> tuple[str, int, bool]:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise DigestMismatch(
                    f"blob content does not match its digest: expected {expected_digest}, "
                    f"got {digest}; the archive or download is corrupt"
                )
            if expected_size is not None and size != expected_size:
                raise DigestMismatch(
                    f"blob {digest} is {size} bytes, but the manifest says {expected_size}"
                )
            created = self.adopt_blob_file(Path(tmp_name), digest)
            return digest, size, created
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def adopt_blob_file(self, path: Path, digest: str) -> bool:
        """Move `path`, already verified to hash to `digest`, into the store (same filesystem).

        Returns whether the blob is new; an existing blob is kept and `path` removed."""
        target = self.blob_path(digest)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():
            path.unlink(missing_ok=True)
            return False
        os.chmod(path, 0o644)
        os.replace(path, target)
        return True

    def put_blob_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        import io

        return self.put_blob(io.BytesIO(data), expected_digest)[0]

    # -- layers ----------------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> Path:
        return self.layer_root / check_digest(diff_id)

    def ensure_layer(self, layer: LayerRecord) -> bool:
        """Unpack the layer blob once; concurrent callers wait for the first one.

        Returns True when this call unpacked it, False when it was there already."""
        from runtime.images.unpack import unpack_layer

        hexpart = check_digest(layer.diff_id)
        target = self.layer_dir(layer.diff_id)
        if (target / "diff").is_dir():
            return False
        lock_file = self.layer_root / ".locks" / hexpart
        with fsutil.locked(lock_file):
            if (target / "diff").is_dir():
                return False
            if not self.has_blob(layer.digest):
                raise ImageError(f"layer blob {layer.digest} is missing from the store")
            # A private staging directory: the lock only saves duplicate work, so removing the
            # lock file below cannot let two unpackers write into one directory.
            staging = Path(tempfile.mkdtemp(dir=self.layer_root, prefix=f".staging-{hexpart[:8]}-"))
            try:
                (staging / "diff").mkdir()
                diff_id = unpack_layer(self.blob_path(layer.digest), staging / "diff")
                if diff_id != layer.diff_id:
                    raise DigestMismatch(
                        f"layer {layer.digest} unpacks to {diff_id}, but the image config "
                        f"lists diff id {layer.diff_id}"
                    )
                try:
                    os.replace(staging, target)
                except OSError:
                    if (target / "diff").is_dir():
                        return False  # another process finished first
                    raise
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
                lock_file.unlink(missing_ok=True)
        return True

    # -- ingestion -------------------------------------------------------------------------
    @contextlib.contextmanager
    def ingesting(self) -> Iterator[Ingest]:
        """Group the blobs and layers one import or pull adds, so a failure removes them all.

        Garbage collection skips the store while any ingestion is under way."""
        self.ingest_lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.ingest_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            ingest = Ingest(self)
            try:
                yield ingest
            except BaseException:
                self.discard(ingest.new_blobs, ingest.new_layers)
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def discard(self, blobs: Iterable[str], diff_ids: Iterable[str]) -> None:
        """Remove the given blobs and layer directories unless an image in the index uses them."""
        with fsutil.locked(self.lock_path):
            images = self._load_index()["images"]
            live_blobs, live_diff_ids = _live_sets(images)
            for digest in blobs:
                if digest not in live_blobs:
                    self.blob_path(digest).unlink(missing_ok=True)
            for diff_id in diff_ids:
                if diff_id not in live_diff_ids:
                    shutil.rmtree(self.layer_dir(diff_id), ignore_errors=True)

    # -- index -----------------------------------------------------------------------------
    def _load_index(self) -> dict[str, Any]:
        return fsutil.read_json(self.index_path, {"images": {}})

    def _save_index(self, index: dict[str, Any]) -> None:
        fsutil.write_json_atomic(self.index_path, index)

    def _image_from(self, record: dict[str, Any]) -> Image:
        return Image(
            id=record["id"],
            manifest_digest=record["manifest_digest"],
            config=record["config"],
            layers=[LayerRecord(**layer) for layer in record["layers"]],
            tags=list(record.get("tags", [])),
            created=record.get("created", 0.0),
            layer_root=self.layer_root,
        )

    def add_image(self, manifest: dict[str, Any], manifest_digest: str,
                  tags: Iterable[str] = (), created_layers: set[str] | None = None) -> Image:
        """Register an image whose manifest, config and layer blobs are already in the store.

        Layers are unpacked (once) before the image becomes visible, so an image in the index
        is always runnable; the diff ids of layers unpacked by this call are added to
        `created_layers`. A tag moves from any image that held it before."""
        return self.add_images([(manifest, manifest_digest, tags)], created_layers)[0]

    def add_images(self, items: Sequence[tuple[dict[str, Any], str, Iterable[str]]],
                   created_layers: set[str] | None = None) -> list[Image]:
        """Register several images (manifest, manifest digest, tags) at once: all of their
        layers are unpacked first, then one index update adds them all, or none."""
        prepared = []
        for manifest, manifest_digest, tags in items:
            config_digest = manifest["config"]["digest"]
            config = _json_blob(self, config_digest)
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            descriptors = manifest.get("layers") or []
            if len(diff_ids) != len(descriptors):
                raise ImageError(
                    f"image config lists {len(diff_ids)} diff ids but the manifest has "
                    f"{len(descriptors)} layers"
                )
            layers = [
                LayerRecord(digest=d["digest"], diff_id=diff_id,
                            media_type=d.get("mediaType", ""), size=int(d.get("size", 0)))
                for d, diff_id in zip(descriptors, diff_ids, strict=True)
            ]
            prepared.append((config_digest, config, manifest_digest, layers,
                             [normalise_tag(t) for t in tags]))
        for *_, layers, _tags in prepared:
            for layer in layers:
                if self.ensure_layer(layer) and created_layers is not None:
                    created_layers.add(layer.diff_id)
        with fsutil.locked(self.lock_path):
            index = self._load_index()
            images = index["images"]
            records = []
            for config_digest, config, manifest_digest, layers, new_tags in prepared:
                for other in images.values():
                    other["tags"] = [t for t in other.get("tags", []) if t not in new_tags]
                existing = images.get(config_digest) or {}
                record = {
                    "id": config_digest,
                    "manifest_digest": manifest_digest,
                    "config": config,
                    "layers": [vars(layer) for layer in layers],
                    "tags": sorted(set(existing.get("tags", [])) | set(new_tags)),
                    "created": existing.get("created") or time.time(),
                    "index_digests": existing.get("index_digests", []),
                }
                images[config_digest] = record
                records.append(record)
            self._save_index(index)
            return [self._image_from(record) for record in records]

    def list(self) -> list[Image]:
        index = self._load_index()
        images = [self._image_from(r) for r in index["images"].values()]
        return sorted(images, key=lambda image: image.created, reverse=True)

    def get(self, ref: str) -> Image:
        """Find an image by tag, full id, `sha256:` prefix or short id prefix."""
        index = self._load_index()["images"]
        record = _lookup(index, ref)
        if record is None:
            raise NotFound(
                f"no such image: {ref!r}; `berth-runtime image ls` lists the images on this host, "
                "`image pull` or `image import` brings one"
            )
        return self._image_from(record)

    def add_index_digest(self, image_id: str, digest: str) -> None:
        """Remember that `image_id` was pulled through the multi-platform index `digest`, so
        NAME@<index digest> (what a registry reports for the tag) finds it."""
        with fsutil.locked(self.lock_path):
            index = self._load_index()
            record = index["images"].get(image_id)
            if record is not None and digest not in record.setdefault("index_digests", []):
                record["index_digests"].append(digest)
                self._save_index(index)

    def tag(self, source: str, target: str) -> Image:
        new_tag = normalise_tag(target)
        with fsutil.locked(self.lock_path):
            index = self._load_index()
            record = _lookup(index["images"], source)
            if record is None:
                raise NotFound(f"no such image: {source!r}")
            for other in index["images"].values():
                other["tags"] = [t for t in other.get("tags", []) if t != new_tag]
            record["tags"] = sorted(set(record["tags"]) | {new_tag})
            self._save_index(index)
            return self._image_from(record)

    def remove(self, ref: str, users: Callable[[str], Sequence[str]] | None = None,
               force: bool = False) -> Sequence[str]:
        """Untag or delete an image; returns what was untagged/deleted, as docker prints it.

        Removing by tag only drops the tag while other tags remain. The image itself is refused
        while `users(image_id)` names containers that use it. Layers and blobs no other image
        needs are freed."""
        removed: builtins.list[str] = []
        with fsutil.locked(self.lock_path):
            index = self._load_index()
            images = index["images"]
            record = _lookup(images, ref)
            if record is None:
                raise NotFound(f"no such image: {ref!r}")
            by_tag = _is_tag_lookup(images, ref)
            if by_tag and len(record["tags"]) > 1 and not force:
                tag = normalise_tag(ref)
                record["tags"].remove(tag)
                self._save_index(index)
                return [f"Untagged: {tag}"]
            in_use = users(record["id"]) if users else []
            if in_use:
                raise Conflict(
                    f"image {ref!r} ({record['id'][7:19]}) is used by container(s) "
                    f"{', '.join(in_use)}; remove them first (`berth-runtime rm`)"
                )
            removed += [f"Untagged: {t}" for t in record["tags"]]
            del images[record["id"]]
            self._save_index(index)
            removed.append(f"Deleted: {record['id']}")
            self._collect_garbage(images)
        return removed

    def _collect_garbage(self, images: dict[str, Any]) -> None:
        """Free layers and blobs that no remaining image references. Called under the lock.

        Skipped while an import or pull runs (their blobs are not in the index yet); the next
        removal collects what was left."""
        fd = os.open(self.ingest_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            live_blobs, live_diff_ids = _live_sets(images)
            if self.layer_root.is_dir():
                for entry in self.layer_root.iterdir():
                    if entry.name.startswith("."):
                        continue
                    if f"sha256:{entry.name}" not in live_diff_ids:
                        shutil.rmtree(entry, ignore_errors=True)
            if self.blob_dir.is_dir():
                for blob in self.blob_dir.iterdir():
                    if f"sha256:{blob.name}" not in live_blobs:
                        blob.unlink(missing_ok=True)
        finally:
            os.close(fd)


class Ingest:
    """What one import or pull added to the store; see `ImageStore.ingesting`."""

    def __init__(self, store: ImageStore):
        self.store = store
        self.new_blobs: set[str] = set()
        self.new_layers: set[str] = set()

    def put_blob(self, stream: IO[bytes], expected_digest: str | None = None,
                 expected_size: int | None = None) -> tuple[str, int]:
        """As `ImageStore.put_blob`, remembering a new blob for rollback."""
        digest, size, created = self.store._put_blob(stream, expected_digest, expected_size)
        if created:
            self.new_blobs.add(digest)
        return digest, size

    def put_blob_bytes(self, data: bytes, expected_digest: str | None = None) -> str:
        """As `ImageStore.put_blob_bytes`, remembering a new blob for rollback."""
        import io

        return self.put_blob(io.BytesIO(data), expected_digest)[0]

    def adopt_blob_file(self, path: Path, digest: str) -> None:
        """As `ImageStore.adopt_blob_file`, remembering a new blob for rollback."""
        if self.store.adopt_blob_file(path, digest):
            self.new_blobs.add(digest)

    def add_image(self, manifest: dict[str, Any], manifest_digest: str,
                  tags: Iterable[str] = ()) -> Image:
        """As `ImageStore.add_image`, remembering the layers it unpacked for rollback."""
        return self.store.add_image(manifest, manifest_digest, tags,
                                    created_layers=self.new_layers)

    def add_images(self, items: Sequence[tuple[dict[str, Any], str, Iterable[str]]]
                   ) -> list[Image]:
        """As `ImageStore.add_images`, remembering the layers it unpacked for rollback."""
        return self.store.add_images(items, created_layers=self.new_layers)


def _live_sets(images: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Blob digests and diff ids that the images in the index need."""
    live_diff_ids = {layer["diff_id"] for r in images.values() for layer in r["layers"]}
    live_blobs = {r["id"] for r in images.values()} | {
        r["manifest_digest"] for r in images.values()
    } | {layer["digest"] for r in images.values() for layer in r["layers"]}
    return live_blobs, live_diff_ids


def normalise_tag(text: str) -> str:
    ref = parse_reference(text)
    if ref.digest and not ref.tag:
        raise InvalidArgument(f"cannot tag with a digest reference {text!r}; use NAME:TAG")
    return f"{ref.repository}:{ref.tag}"


def _is_tag_lookup(images: dict[str, Any], ref: str) -> bool:
    try:
        tag = normalise_tag(ref)
    except Exception:
        return False
    return any(tag in r.get("tags", []) for r in images.values())


def _lookup(images: dict[str, Any], ref: str) -> dict[str, Any] | None:
    if ref in images:
        return images[ref]
    if "@" in ref:
        # NAME[:TAG]@DIGEST is the image with that manifest (or multi-platform index) digest,
        # whatever the tag holds now
        digest = ref.rpartition("@")[2]
        return next((r for r in images.values() if digest == r.get("manifest_digest")
                     or digest in r.get("index_digests", [])), None)
    try:
        tag = normalise_tag(ref)
    except Exception:
        tag = None
    if tag:
        for record in images.values():
            if tag in record.get("tags", []):
                return record
    prefix = ref.removeprefix("sha256:").lower()
    if len(prefix) >= 4 and all(c in "0123456789abcdef" for c in prefix):
        matches = [r for r in images.values() if r["id"][7:].startswith(prefix)]
        if len(matches) > 1:
            raise Conflict(f"image id prefix {ref!r} is ambiguous; give more characters")
        if matches:
            return matches[0]
    return None


def _json_blob(store: ImageStore, digest: str) -> dict[str, Any]:
    import json

    try:
        return json.loads(store.read_blob(digest))
    except ValueError as exc:
        raise ImageError(f"blob {digest} is not valid JSON: {exc}") from None
