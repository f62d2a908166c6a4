"""Safe unpacking of one image layer into its own directory, in overlayfs format.

Every entry is checked before anything is written, so no entry can create or change anything
outside the layer directory:

1. names are normalised; absolute names and `..` components are refused;
2. no parent of an entry may be a symlink (that would write through the link);
3. hardlinks must point at an entry already unpacked inside this layer;
4. relative symlink targets may not climb above the layer root (absolute targets are kept: the
   kernel resolves them inside the container's root, and we never follow them here);
5. device nodes are refused; OCI whiteouts become overlayfs whiteouts (`.wh.NAME` -> a 0/0
   character device, `.wh..wh..opq` -> the `trusted.overlay.opaque` xattr on the directory).

The layer's diff id (sha256 of the uncompressed tar) is computed on the way through.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import tarfile
import zlib
from pathlib import Path
from typing import IO

from runtime.errors import ImageError, UnsafeArchive

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _HashingReader(io.RawIOBase):
    """Reads a decompressed stream while hashing everything that passes through."""

    def __init__(self, source: IO[bytes]):
        self.source = source
        self.hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.source.read(len(buffer))
        self.hasher.update(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _GzipStream(io.RawIOBase):
    """Streaming gunzip that also accepts concatenated members.

    Output is produced at most one caller buffer at a time (`max_length`), so a small, highly
    compressed input never expands into one huge chunk in memory."""

    def __init__(self, source: IO[bytes]):
        self.source = source
        self.decompressor = zlib.decompressobj(wbits=31)
        self.tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        try:
            while True:
                if self.decompressor.eof:
                    leftover = self.decompressor.unused_data or self.source.read(1 << 16)
                    if not leftover:
                        return 0
                    self.decompressor = zlib.decompressobj(wbits=31)
                    self.tail = leftover
                data = self.tail or self.source.read(1 << 16)
                if not data:
                    raise ImageError("a gzip layer ends in the middle of its data; the blob is "
                                     "truncated")
                out = self.decompressor.decompress(data, len(buffer))
                self.tail = self.decompressor.unconsumed_tail
                if out:
                    buffer[: len(out)] = out
                    return len(out)
        except zlib.error as exc:
            raise ImageError(f"a layer is not valid gzip data: {exc}") from None


def open_layer_stream(raw: IO[bytes]) -> IO[bytes]:
    """Wrap `raw` in the right decompressor, detected from its first bytes."""
    buffered: IO[bytes] = raw if hasattr(raw, "peek") \
        else io.BufferedReader(raw, 1 << 16)  # type: ignore[arg-type, type-var]
    head = buffered.peek(4)[:4]  # type: ignore[attr-defined]
    if head.startswith(_GZIP_MAGIC):
        return io.BufferedReader(_GzipStream(buffered), 1 << 16)
    if head.startswith(_ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)  # type: ignore[return-value]
    return buffered


def unpack_layer(blob: Path, dest: Path) -> str:
    """Unpack the layer at `blob` (plain, gzip or zstd tar) into the empty directory `dest`.

    Returns the diff id. Raises UnsafeArchive naming the entry when any entry is refused; the
    caller removes `dest` then."""
    with open(blob, "rb") as raw:
        hashing = _HashingReader(open_layer_stream(raw))
        reader = io.BufferedReader(hashing, 1 << 16)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:
                unpacker = _Unpacker(dest)
                for member in archive:
                    unpacker.add(member, archive)
                unpacker.finish()
            # tar's end-of-archive padding is part of the diff id.
            while reader.read(1 << 20):
                pass
        except (tarfile.TarError, EOFError) as exc:
            raise ImageError(f"layer {blob.name} is not a readable tar archive: {exc}") from None
        except zstandard_error() as exc:
            raise ImageError(f"layer {blob.name} is not valid zstd data: {exc}") from None
    return "sha256:" + hashing.hasher.hexdigest()


def zstandard_error() -> type[Exception]:
    """zstandard's error class, imported only when needed."""
    import zstandard

    return zstandard.ZstdError


def clean_entry_name(name: str, kind: str = "layer entry") -> str:
    """Normalise an archive entry name to a relative path ('' for the root itself).

    Refuses absolute names and `..` components with an UnsafeArchive naming the entry. Shared
    with the volume restore (runtime/volumes), which passes its own `kind` for the messages."""
    if name.startswith("/"):
        raise UnsafeArchive(f"{kind} {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchive(f"{kind} {name!r} climbs out with '..'; refused")
    return "/".join(parts)


def check_parents(root: Path, relname: str, entry: str, kind: str = "layer entry") -> None:
    """Refuse `entry` when a directory on the way to `relname` under `root` is a symlink (writing
    through it would land outside `root`) or is not a directory at all."""
    current = root
    for part in relname.split("/")[:-1]:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(
                f"{kind} {entry!r} would be written through the symlink "
                f"{current.relative_to(root)!s}; refused"
            )
        if not stat.S_ISDIR(mode):
            raise UnsafeArchive(f"{kind} {entry!r}: a parent is not a directory")


class _Unpacker:
    def __init__(self, dest: Path):
        self.dest = Path(dest)
        self.dir_times: list[tuple[str, float]] = []

    # -- checks ----------------------------------------------------------------------------
    def _clean_name(self, name: str) -> str:
        return clean_entry_name(name)

    def _check_parents(self, relname: str, entry: str) -> None:
        """No directory on the way to `relname` may be a symlink (or anything but a dir)."""
        check_parents(self.dest, relname, entry)

    def _ensure_parents(self, relname: str) -> None:
        parent = posixpath.dirname(relname)
        if parent:
            os.makedirs(self.dest / parent, mode=0o755, exist_ok=True)

    def _replace_existing(self, path: Path, keep_dir: bool) -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            if keep_dir:
                return
            import shutil

            shutil.rmtree(path)
        else:
            os.unlink(path)

    # -- entries ---------------------------------------------------------------------------
    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        relname = self._clean_name(member.name)
        if not relname:
            if member.isdir():
                return
            raise UnsafeArchive(f"layer entry {member.name!r} has an empty name; refused")
        self._check_parents(relname, member.name)
        base = posixpath.basename(relname)
        path = self.dest / relname

        if base == OPAQUE_MARKER:
            directory = path.parent
            os.makedirs(directory, mode=0o755, exist_ok=True)
            os.setxattr(directory, "trusted.overlay.opaque", b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = path.with_name(base[len(WHITEOUT_PREFIX):])
            if hidden.name in ("", ".", ".."):
                raise UnsafeArchive(f"layer entry {member.name!r} is a malformed whiteout")
            self._ensure_parents(relname)
            self._replace_existing(hidden, keep_dir=False)
            os.mknod(hidden, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
            return

        self._ensure_parents(relname)
        if member.isdir():
            self._replace_existing(path, keep_dir=True)
            if not path.is_dir():
                os.mkdir(path, 0o700)
            self._set_metadata(path, member)
            self.dir_times.append((relname, member.mtime))
        elif member.isreg():
            self._replace_existing(path, keep_dir=False)
            source = archive.extractfile(member)
            assert source is not None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            self._set_metadata(path, member)
        elif member.issym():
            target = member.linkname
            if not target.startswith("/"):
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(relname), target))
                if joined == ".." or joined.startswith("../"):
                    raise UnsafeArchive(
                        f"layer entry {member.name!r} is a symlink to {target!r}, outside the "
                        "layer; refused"
                    )
            self._replace_existing(path, keep_dir=False)
            os.symlink(target, path)
            os.lchown(path, member.uid, member.gid)
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        elif member.islnk():
            target_rel = self._clean_link_target(member)
            self._check_parents(target_rel, member.name)
            link_target = self.dest / target_rel
            if not os.path.lexists(link_target):
                raise UnsafeArchive(
                    f"layer entry {member.name!r} is a hardlink to {member.linkname!r}, which is "
                    "not in this layer; refused"
                )
            self._replace_existing(path, keep_dir=False)
            os.link(link_target, path, follow_symlinks=False)
        elif member.isfifo():
            self._replace_existing(path, keep_dir=False)
            os.mkfifo(path, 0o600)
            self._set_metadata(path, member)
        elif member.ischr() or member.isblk():
            raise UnsafeArchive(
                f"layer entry {member.name!r} is a device node; device nodes are refused "
                "(the runtime creates the devices a container needs)"
            )
        else:
            raise UnsafeArchive(
                f"layer entry {member.name!r} has an unsupported type {member.type!r}; "
                "allowed: files, directories, symlinks, hardlinks, fifos, whiteouts"
            )

    def _clean_link_target(self, member: tarfile.TarInfo) -> str:
        try:
            cleaned = self._clean_name(member.linkname)
        except UnsafeArchive:
            raise UnsafeArchive(
                f"layer entry {member.name!r} is a hardlink to {member.linkname!r}, outside the "
                "layer; refused"
            ) from None
        if not cleaned:
            raise UnsafeArchive(f"layer entry {member.name!r} is a hardlink with no target")
        return cleaned

    def _set_metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        os.lchown(path, member.uid, member.gid)
        os.chmod(path, member.mode & 0o7777)
        for key, value in (member.pax_headers or {}).items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr."):]
                if name.startswith(("user.", "security.capability")):
                    raw = value.encode("utf-8", "surrogateescape")
                    os.setxattr(path, name, raw, follow_symlinks=False)
        if not member.isdir():
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: writing entries inside a directory changes its mtime."""
        for relname, mtime in reversed(self.dir_times):
            os.utime(self.dest / relname, (mtime, mtime), follow_symlinks=False)
