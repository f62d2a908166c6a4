"""Volume backups as tar archives (pax format), and their safe restore.

A backup holds the volume's whole tree, its root directory included as `./`, so that the round
trip preserves, byte for byte: contents, numeric owners, modes (setuid, setgid, sticky), mtimes to
the nanosecond (pax `mtime` records), symlinks (never followed), hardlinks, empty directories,
fifos and the `user.*` / `security.capability` xattrs (pax `SCHILY.xattr.*`, as GNU tar writes
them). Sockets are skipped (a program recreates its socket when it listens again); device nodes
make the backup fail, because a restore refuses them.

Reading the live volume never follows a symlink: the tree is walked through directory file
descriptors opened with O_NOFOLLOW, so a container that swaps a directory for a symlink while the
backup runs cannot make it read host files.

Restoring applies the safety rules of image layers (runtime/images/unpack.py): no absolute names,
no `..`, nothing written through a symlinked parent, hardlinks only to entries already restored,
no device nodes. Unlike a layer, `.wh.*` names are ordinary files here, and symlink targets are
kept as they are whatever they point at: the restore never follows them, and a container resolves
them inside its own root.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from typing import IO

import zstandard

from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, UnsafeArchive
from runtime.images.unpack import check_parents, clean_entry_name, open_layer_stream

ENTRY_KIND = "backup entry"
XATTR_PREFIXES = ("user.", "security.capability")
_PAX_XATTR = "SCHILY.xattr."
_NS = 1_000_000_000
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def compression_for(file: Path) -> str:
    """'zstd' for `.zst`, 'gzip' for `.gz`/`.tgz`, else 'none' (plain tar)."""
    name = file.name
    if name.endswith(".zst"):
        return "zstd"
    if name.endswith((".gz", ".tgz")):
        return "gzip"
    return "none"


def format_pax_time(ns: int) -> str:
    """A pax time record with nanosecond precision: `-1.500000000` for -1.5 s."""
    sign = "-" if ns < 0 else ""
    seconds, fraction = divmod(abs(ns), _NS)
    return f"{sign}{seconds}.{fraction:09d}"


def parse_pax_time(value: str, entry: str) -> int:
    """The nanoseconds of a pax time record (digits beyond nanoseconds are dropped)."""
    try:
        return int((Decimal(value) * _NS).to_integral_value(rounding=ROUND_FLOOR))
    except (InvalidOperation, ValueError):
        raise InvalidArgument(
            f"{ENTRY_KIND} {entry!r} has a malformed pax mtime {value!r}; expected seconds "
            "as a decimal number"
        ) from None


def _read_xattrs(fd: int) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError:  # filesystem without xattr support
        return {}
    found = {}
    for name in sorted(names):
        if name.startswith(XATTR_PREFIXES):
            with contextlib.suppress(OSError):  # removed between list and get
                found[name] = os.getxattr(fd, name)
    return found


# -- backup ------------------------------------------------------------------------------------


def write_backup(source: Path, file: Path, volume: str) -> int:
    """Archive the directory `source` (a volume's _data) into `file`; return the file's size.

    The archive is written to a temporary file beside `file` and renamed into place only when
    complete, so a failed backup leaves no partial `file` (an existing one stays untouched).
    The file is created readable by its owner only: it holds the volume's data."""
    file = Path(file)
    parent = file.parent
    if not parent.is_dir():
        raise NotFound(
            f"cannot write backup {str(file)!r}: directory {str(parent)!r} does not exist"
        )
    if file.is_dir():
        raise InvalidArgument(
            f"cannot write backup {str(file)!r}: it is a directory; give a file name"
        )
    try:
        fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{file.name}.", suffix=".partial")
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot write backup into {str(parent)!r}: {exc.strerror}; choose a writable directory"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with _compressed_writer(raw, compression_for(file)) as stream:
                with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT,
                                  encoding="utf-8", errors="surrogateescape") as archive:
                    _Archiver(archive, volume).add_tree(source)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, file)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise RuntimeFailure(
                f"backup of volume {volume!r} to {str(file)!r} failed: {exc}"
            ) from exc
        raise
    _fsync_dir(parent)
    return file.stat().st_size


@contextlib.contextmanager
def _compressed_writer(raw: IO[bytes], compression: str) -> Iterator[IO[bytes]]:
    if compression == "zstd":
        compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
        with compressor.stream_writer(raw, closefd=False) as zstd_stream:
            yield zstd_stream  # type: ignore[misc]
    elif compression == "gzip":
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gzip_stream:
            yield gzip_stream  # type: ignore[misc]
    else:
        yield raw


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Archiver:
    """Adds a directory tree to a tar stream, walking it by file descriptor (see module doc)."""

    def __init__(self, archive: tarfile.TarFile, volume: str):
        self.archive = archive
        self.volume = volume
        self.first_name: dict[tuple[int, int], str] = {}  # (dev, ino) -> first archived name

    def add_tree(self, source: Path) -> None:
        """Archive `source` as `./`, then everything below it, parents before children, each
        directory's entries sorted by name (so two backups of one tree are identical)."""
        root_fd = os.open(source, _DIR_FLAGS)
        stack: list[tuple[int, str, Iterator[str]]] = [(root_fd, "", iter(()))]
        try:
            self._add_directory(".", root_fd)
            stack[0] = (root_fd, "", iter(sorted(os.listdir(root_fd))))
            while stack:
                dir_fd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    os.close(dir_fd)
                    continue
                relname = prefix + name
                child_fd = self._add_entry(dir_fd, name, relname)
                if child_fd is not None:
                    stack.append((child_fd, relname + "/", iter(())))  # closed by `finally`
                    stack[-1] = (child_fd, relname + "/", iter(sorted(os.listdir(child_fd))))
        finally:
            for dir_fd, _, _ in stack:
                os.close(dir_fd)

    def _add_entry(self, dir_fd: int, name: str, relname: str) -> int | None:
        """Archive one entry; for a directory return its open fd so the walk descends into it."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed while the backup runs
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            child_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                self._add_directory(relname, child_fd)
            except BaseException:
                os.close(child_fd)
                raise
            return child_fd
        if stat.S_ISREG(mode):
            self._add_file(dir_fd, name, relname, st)
        elif stat.S_ISLNK(mode):
            info = self._info(relname, tarfile.SYMTYPE, st)
            info.linkname = os.readlink(name, dir_fd=dir_fd)
            self.archive.addfile(info)
        elif stat.S_ISFIFO(mode):
            self.archive.addfile(self._info(relname, tarfile.FIFOTYPE, st))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise Conflict(
                f"volume {self.volume!r} holds the device node {relname!r}; a restore refuses "
                "device nodes, so the backup does too: remove it from the volume and retry"
            )
        # Sockets are skipped on purpose (see the module docstring).
        return None

    def _info(self, relname: str, kind: bytes, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(relname)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""  # numeric owners only: names differ between hosts
        info.mtime = max(0, st.st_mtime_ns // _NS)
        info.pax_headers = {"mtime": format_pax_time(st.st_mtime_ns)}
        return info

    def _add_xattrs(self, info: tarfile.TarInfo, fd: int) -> None:
        headers = dict(info.pax_headers)
        for name, value in _read_xattrs(fd).items():
            headers[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
        info.pax_headers = headers

    def _add_directory(self, relname: str, fd: int) -> None:
        info = self._info(relname, tarfile.DIRTYPE, os.fstat(fd))
        self._add_xattrs(info, fd)
        self.archive.addfile(info)

    def _add_file(self, dir_fd: int, name: str, relname: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.first_name:
            info = self._info(relname, tarfile.LNKTYPE, st)
            info.linkname = self.first_name[key]
            self.archive.addfile(info)
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as source:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != key or not stat.S_ISREG(opened.st_mode):
                raise Conflict(
                    f"volume {self.volume!r}: {relname!r} changed while the backup ran; stop the "
                    "containers that write to the volume and retry"
                )
            info = self._info(relname, tarfile.REGTYPE, opened)
            info.size = opened.st_size
            self._add_xattrs(info, fd)
            self.archive.addfile(info, source)
        if st.st_nlink > 1:
            self.first_name[key] = relname


# -- restore -----------------------------------------------------------------------------------


@dataclass
class RootMetadata:
    """Owner, mode, xattrs and mtime of the archived root directory (`./`)."""

    uid: int
    gid: int
    mode: int
    mtime_ns: int
    xattrs: dict[str, bytes] = field(default_factory=dict)


def extract_backup(file: Path, dest: Path) -> RootMetadata | None:
    """Restore the archive `file` (plain, gzip or zstd tar) into the empty directory `dest`.

    Returns the metadata of the archive's root entry (None if it has none: an archive made of
    the directory's entries rather than the directory). Raises UnsafeArchive naming the entry
    when an entry is refused, InvalidArgument when `file` is not a readable tar archive; the
    caller removes `dest` then."""
    try:
        raw = open(file, "rb")
    except FileNotFoundError:
        raise NotFound(f"backup file {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(
            f"backup file {str(file)!r} is a directory; give an archive file"
        ) from None
    with raw:
        restorer = _Restorer(Path(dest))
        try:
            stream = open_layer_stream(raw)
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8",
                              errors="surrogateescape") as archive:
                for member in archive:
                    restorer.add(member, archive)
            restorer.finish()
        except (tarfile.TarError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise InvalidArgument(
                f"{str(file)!r} is not a readable tar archive (plain, gzip or zstd): {exc}"
            ) from None
        except OSError as exc:
            raise RuntimeFailure(f"restoring from {str(file)!r} failed: {exc}") from exc
    return restorer.root


class _Restorer:
    def __init__(self, dest: Path):
        self.dest = dest
        self.dir_times: list[tuple[str, int]] = []
        self.root: RootMetadata | None = None

    def add(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        relname = clean_entry_name(member.name, ENTRY_KIND)
        mtime_ns = self._mtime_ns(member)
        if not relname:
            if not member.isdir():
                raise UnsafeArchive(f"{ENTRY_KIND} {member.name!r} names the root but is not a "
                                    "directory; refused")
            self.root = RootMetadata(member.uid, member.gid, member.mode & 0o7777, mtime_ns,
                                     _archived_xattrs(member))
            return
        check_parents(self.dest, relname, member.name, ENTRY_KIND)
        parent = posixpath.dirname(relname)
        path = self.dest / relname
        try:
            if parent:
                os.makedirs(self.dest / parent, mode=0o755, exist_ok=True)
            self._create(member, archive, relname, path, mtime_ns)
        except OSError as exc:
            raise RuntimeFailure(f"cannot restore {ENTRY_KIND} {member.name!r}: {exc}") from exc

    def _create(self, member: tarfile.TarInfo, archive: tarfile.TarFile, relname: str,
                path: Path, mtime_ns: int) -> None:
        if member.isdir():
            _replace_existing(path, keep_dir=True)
            if not path.is_dir():
                os.mkdir(path, 0o700)
            fd = os.open(path, _DIR_FLAGS)
            try:
                _set_metadata(fd, member.uid, member.gid, member.mode, _archived_xattrs(member))
            finally:
                os.close(fd)
            self.dir_times.append((relname, mtime_ns))
        elif member.isreg():
            _replace_existing(path, keep_dir=False)
            source = archive.extractfile(member)
            assert source is not None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
                out.flush()
                _set_metadata(fd, member.uid, member.gid, member.mode, _archived_xattrs(member))
                os.utime(fd, ns=(mtime_ns, mtime_ns))
        elif member.issym():
            _replace_existing(path, keep_dir=False)
            os.symlink(member.linkname, path)
            os.lchown(path, member.uid, member.gid)
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        elif member.islnk():
            target = self._hardlink_target(member)
            _replace_existing(path, keep_dir=False)
            os.link(target, path, follow_symlinks=False)
        elif member.isfifo():
            _replace_existing(path, keep_dir=False)
            os.mkfifo(path, 0o600)
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            os.chmod(path, member.mode & 0o7777, follow_symlinks=False)
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        elif member.ischr() or member.isblk():
            raise UnsafeArchive(f"{ENTRY_KIND} {member.name!r} is a device node; device nodes are "
                                "refused in volumes")
        else:
            raise UnsafeArchive(f"{ENTRY_KIND} {member.name!r} has the unsupported tar type "
                                f"{member.type!r}; allowed: files, directories, symlinks, "
                                "hardlinks, fifos")

    def _hardlink_target(self, member: tarfile.TarInfo) -> Path:
        outside = UnsafeArchive(f"{ENTRY_KIND} {member.name!r} is a hardlink to "
                                f"{member.linkname!r}, which is not an earlier entry of this "
                                "archive; refused")
        try:
            target_rel = clean_entry_name(member.linkname, ENTRY_KIND)
        except UnsafeArchive:
            raise outside from None
        if not target_rel:
            raise outside
        check_parents(self.dest, target_rel, member.name, ENTRY_KIND)
        target = self.dest / target_rel
        try:
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise outside
        except FileNotFoundError:
            raise outside from None
        return target

    @staticmethod
    def _mtime_ns(member: tarfile.TarInfo) -> int:
        exact = member.pax_headers.get("mtime")
        if exact is not None:
            return parse_pax_time(exact, member.name)
        return int(member.mtime) * _NS

    def finish(self) -> None:
        """Directory times last: creating entries inside a directory changes its mtime."""
        for relname, mtime_ns in reversed(self.dir_times):
            os.utime(self.dest / relname, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _archived_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    found = {}
    for key, value in member.pax_headers.items():
        if key.startswith(_PAX_XATTR):
            name = key[len(_PAX_XATTR):]
            if name.startswith(XATTR_PREFIXES):
                found[name] = value.encode("utf-8", "surrogateescape")
    return found


def _set_metadata(fd: int, uid: int, gid: int, mode: int, xattrs: dict[str, bytes]) -> None:
    """Owner first (chown clears setuid bits and file capabilities), then mode, then xattrs."""
    os.chown(fd, uid, gid)
    os.chmod(fd, mode & 0o7777)
    for name, value in xattrs.items():
        os.setxattr(fd, name, value)


def _replace_existing(path: Path, keep_dir: bool) -> None:
    """A later entry of one name replaces an earlier one, as tar does."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        if not keep_dir:
            shutil.rmtree(path)
    else:
        os.unlink(path)


# -- swapping a restored tree in -----------------------------------------------------------------


def swap_contents(data: Path, staging: Path, graveyard: Path, root: RootMetadata | None) -> None:
    """Replace the contents of `data` by those of `staging`, keeping the `data` directory itself.

    The directory stays the same inode because running containers bind-mount it: they see the
    restored content at once. Steps:
    1. move every entry of `data` into the empty directory `graveyard` (renames, same filesystem);
    2. move every entry of `staging` into `data`;
    3. give `data` the archived root's owner, mode, xattrs and mtime.
    If step 1 or 2 fails, the moves done so far are undone and `data` holds its old content. The
    caller removes `graveyard` (the old content) and `staging` afterwards."""
    moved_out: list[str] = []
    moved_in: list[str] = []
    data_fd = os.open(data, _DIR_FLAGS)
    staging_fd = os.open(staging, _DIR_FLAGS)
    graveyard_fd = os.open(graveyard, _DIR_FLAGS)
    try:
        try:
            for name in os.listdir(data_fd):
                os.rename(name, name, src_dir_fd=data_fd, dst_dir_fd=graveyard_fd)
                moved_out.append(name)
            for name in os.listdir(staging_fd):
                os.rename(name, name, src_dir_fd=staging_fd, dst_dir_fd=data_fd)
                moved_in.append(name)
        except OSError as exc:
            for name in moved_in:
                os.rename(name, name, src_dir_fd=data_fd, dst_dir_fd=staging_fd)
            for name in moved_out:
                os.rename(name, name, src_dir_fd=graveyard_fd, dst_dir_fd=data_fd)
            raise RuntimeFailure(f"cannot swap the restored content into {str(data)!r}: {exc}; "
                                 "the old content was kept") from exc
        if root is not None:
            _set_metadata(data_fd, root.uid, root.gid, root.mode, {})
            _sync_xattrs(data_fd, root.xattrs)
            os.utime(data_fd, ns=(root.mtime_ns, root.mtime_ns))
    finally:
        for fd in (data_fd, staging_fd, graveyard_fd):
            os.close(fd)


def _sync_xattrs(fd: int, wanted: dict[str, bytes]) -> None:
    for name in _read_xattrs(fd):
        if name not in wanted:
            os.removexattr(fd, name)
    for name, value in wanted.items():
        os.setxattr(fd, name, value)


def discard_tree(path: Path) -> None:
    """Remove a staging or graveyard directory, tolerating its absence."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


__all__ = [
    "RootMetadata",
    "compression_for",
    "discard_tree",
    "extract_backup",
    "swap_contents",
    "write_backup",
]
