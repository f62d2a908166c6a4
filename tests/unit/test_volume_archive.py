"""Volume restore safety: every unsafe archive is refused, naming the entry, and changes nothing."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument, NotFound, UnsafeArchive
from runtime.volumes import VolumeStore
from runtime.volumes.archive import compression_for, format_pax_time, parse_pax_time


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "root")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the runtime root that no archive may touch."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_text("host data")
    return directory


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below `root` (root included) with its type, mode, mtime and content digest."""
    entries: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files] if directory == str(root) else [*dirs, *files]:
            path = os.path.normpath(os.path.join(directory, name))
            st = os.lstat(path)
            content = b""
            if os.path.islink(path):
                content = os.readlink(path).encode()
            elif os.path.isfile(path):
                content = Path(path).read_bytes()
            entries[os.path.relpath(path, root)] = (
                st.st_mode, st.st_mtime_ns, hashlib.sha256(content).hexdigest(),
            )
    return entries


def make_archive(path: Path, entries: list[tuple[str, bytes, str, bytes]]) -> Path:
    """Write a tar with (name, type, linkname, content) entries, owned by the current user."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, linkname, content in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = linkname
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.uid, info.gid = os.getuid(), os.getgid()
            info.mtime = 1_600_000_000
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content else None)
    return path


def volume_with_content(store: VolumeStore) -> Path:
    data = store.create("data").mountpoint
    (data / "app").mkdir()
    (data / "app" / "config").write_text("old config")
    os.symlink("app/config", data / "current")
    return data


def hidden_leftovers(store: VolumeStore) -> list[str]:
    return [p for p in os.listdir(store.base / "data") if p not in ("_data", "volume.json")]


UNSAFE_CASES = {
    "absolute name": ([("/etc/evil", tarfile.REGTYPE, "", b"x")], "absolute path"),
    "dot-dot name": ([("../evil", tarfile.REGTYPE, "", b"x")], "climbs out"),
    "dot-dot inside name": ([("app/../../evil", tarfile.REGTYPE, "", b"x")], "climbs out"),
    "write through absolute symlink": (
        [("link", tarfile.SYMTYPE, "{outside}", b""), ("link/evil", tarfile.REGTYPE, "", b"x")],
        "written through the symlink link",
    ),
    "write through relative symlink": (
        [("d", tarfile.DIRTYPE, "", b""), ("d/up", tarfile.SYMTYPE, "../../../..", b""),
         ("d/up/evil", tarfile.REGTYPE, "", b"x")],
        "written through the symlink d/up",
    ),
    "hardlink climbing out": (
        [("hl", tarfile.LNKTYPE, "../../outside/secret", b"")], "hardlink to",
    ),
    "hardlink to absolute path": ([("hl", tarfile.LNKTYPE, "{outside}/secret", b"")],
                                  "hardlink to"),
    "hardlink to missing entry": ([("hl", tarfile.LNKTYPE, "nothing", b"")], "hardlink to"),
    "hardlink to directory": (
        [("d", tarfile.DIRTYPE, "", b""), ("hl", tarfile.LNKTYPE, "d", b"")], "hardlink to",
    ),
    "hardlink through symlink": (
        [("link", tarfile.SYMTYPE, "{outside}", b""), ("hl", tarfile.LNKTYPE, "link/secret", b"")],
        "written through the symlink link",
    ),
    "character device": ([("null", tarfile.CHRTYPE, "", b"")], "device node"),
    "block device": ([("sda", tarfile.BLKTYPE, "", b"")], "device node"),
    "file under a file": (
        [("f", tarfile.REGTYPE, "", b"x"), ("f/g", tarfile.REGTYPE, "", b"y")],
        "parent is not a directory",
    ),
    "root that is not a directory": ([(".", tarfile.REGTYPE, "", b"x")], "not a directory"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_CASES))
def test_restore_refuses_unsafe_archive_and_changes_nothing(
    store: VolumeStore, outside: Path, tmp_path: Path, case: str,
) -> None:
    entries, message = UNSAFE_CASES[case]
    entries = [(name, kind, link.replace("{outside}", str(outside)), content)
               for name, kind, link, content in entries]
    data = volume_with_content(store)
    before, outside_before = snapshot(data), snapshot(outside)
    archive = make_archive(tmp_path / "evil.tar", entries)

    with pytest.raises(UnsafeArchive, match=message) as refused:
        store.restore("data", archive)

    offending = entries[-1][0]
    assert repr(offending) in str(refused.value), "the message names the entry"
    assert snapshot(data) == before
    assert snapshot(outside) == outside_before
    assert hidden_leftovers(store) == []


def test_refused_restore_into_new_volume_leaves_no_volume(store: VolumeStore, tmp_path: Path,
                                                         outside: Path) -> None:
    archive = make_archive(tmp_path / "evil.tar", [
        ("ok", tarfile.REGTYPE, "", b"fine"), ("../escape", tarfile.REGTYPE, "", b"x"),
    ])
    with pytest.raises(UnsafeArchive):
        store.restore("fresh", archive)
    assert not store.exists("fresh")
    assert sorted(os.listdir(store.base)) == [".lock"]


def test_restore_refuses_file_that_is_not_a_tar_archive(store: VolumeStore,
                                                        tmp_path: Path) -> None:
    data = volume_with_content(store)
    before = snapshot(data)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 100)
    with pytest.raises(InvalidArgument, match="not a readable tar archive"):
        store.restore("data", junk)
    assert snapshot(data) == before
    assert hidden_leftovers(store) == []


def test_restore_refuses_truncated_zstd_backup(store: VolumeStore, tmp_path: Path) -> None:
    data = volume_with_content(store)
    (data / "big").write_bytes(os.urandom(256 * 1024))
    backup = tmp_path / "data.tar.zst"
    store.backup("data", backup)
    truncated = tmp_path / "truncated.tar.zst"
    truncated.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    (data / "big").unlink()
    before = snapshot(data)
    with pytest.raises(InvalidArgument, match="truncated.tar.zst"):
        store.restore("data", truncated)
    assert snapshot(data) == before
    assert hidden_leftovers(store) == []


def test_restore_missing_archive_is_not_found(store: VolumeStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope.tar"):
        store.restore("data", tmp_path / "nope.tar")
    assert not store.exists("data")


def test_restore_keeps_whiteout_names_as_plain_files(store: VolumeStore, tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "wh.tar", [
        ("d", tarfile.DIRTYPE, "", b""),
        ("d/.wh.file", tarfile.REGTYPE, "", b"not a whiteout"),
        ("d/.wh..wh..opq", tarfile.REGTYPE, "", b"not opaque"),
    ])
    data = store.restore("wh", archive).mountpoint
    assert (data / "d" / ".wh.file").read_bytes() == b"not a whiteout"
    assert (data / "d" / ".wh..wh..opq").read_bytes() == b"not opaque"


def test_restore_keeps_symlink_targets_as_archived_without_following(
    store: VolumeStore, tmp_path: Path, outside: Path,
) -> None:
    archive = make_archive(tmp_path / "links.tar", [
        ("abs", tarfile.SYMTYPE, str(outside / "secret"), b""),
        ("climb", tarfile.SYMTYPE, "../../../etc", b""),
        ("dangling", tarfile.SYMTYPE, "no/such/file", b""),
    ])
    data = store.restore("links", archive).mountpoint
    assert os.readlink(data / "abs") == str(outside / "secret")
    assert os.readlink(data / "climb") == "../../../etc"
    assert os.readlink(data / "dangling") == "no/such/file"
    assert (outside / "secret").read_text() == "host data"


def test_restore_replaces_content_and_removes_files_not_in_archive(store: VolumeStore,
                                                                   tmp_path: Path) -> None:
    data = volume_with_content(store)
    archive = make_archive(tmp_path / "new.tar", [("fresh", tarfile.REGTYPE, "", b"new")])
    inode = os.stat(data).st_ino
    store.restore("data", archive)
    assert sorted(os.listdir(data)) == ["fresh"]
    assert os.stat(data).st_ino == inode, "the bind-mounted directory itself is kept"
    assert hidden_leftovers(store) == []


@pytest.mark.parametrize("ns", [0, 1_234_567_890_123_456_789, -1_500_000_000, 999_999_999])
def test_pax_time_round_trips_nanoseconds(ns: int) -> None:
    assert parse_pax_time(format_pax_time(ns), "entry") == ns


def test_pax_time_refuses_garbage() -> None:
    with pytest.raises(InvalidArgument, match="'entry'.*mtime"):
        parse_pax_time("soon", "entry")


@pytest.mark.parametrize("name, expected", [
    ("b.tar.zst", "zstd"), ("b.zst", "zstd"), ("b.tar.gz", "gzip"), ("b.tgz", "gzip"),
    ("b.tar", "none"), ("backup", "none"),
])
def test_compression_is_chosen_by_file_suffix(name: str, expected: str) -> None:
    assert compression_for(Path(name)) == expected
