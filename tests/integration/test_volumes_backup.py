"""Volume backup and restore, byte for byte: contents, numeric owners, modes, nanosecond mtimes,
symlinks, hardlinks, empty directories, fifos and xattrs survive the round trip (needs root)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import struct
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import Conflict, NotFound, RuntimeFailure
from runtime.volumes import VolumeStore

pytestmark = pytest.mark.root

# security.capability v2 blob: CAP_NET_BIND_SERVICE permitted + effective.
NET_BIND_CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
ODD_NAME = os.fsdecode(b"caf\xe9-latin1")  # not valid UTF-8: must survive as bytes
LONG_DIR = "d" * 90 + "/" + "e" * 90  # path longer than ustar's 100-character name field


def manifest(root: Path) -> dict[str, dict]:
    """Everything a byte-for-byte round trip must preserve, per entry (root included as '.').

    Hardlinks are recorded as the set of names sharing one inode, so the comparison holds
    whichever name a backup stores first."""
    entries: dict[str, dict] = {}
    names_of_inode: dict[int, list[str]] = {}
    for directory, dirs, files in os.walk(root):
        names = [*dirs, *files] + (["."] if directory == str(root) else [])
        for name in names:
            path = os.path.normpath(os.path.join(directory, name))
            relname = os.path.relpath(path, root)
            st = os.lstat(path)
            entry = {
                "type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns,
                "size": st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                "sha256": None, "link": None, "xattrs": {},
            }
            if stat.S_ISREG(st.st_mode):
                entry["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                names_of_inode.setdefault(st.st_ino, []).append(relname)
            if stat.S_ISLNK(st.st_mode):
                entry["link"] = os.readlink(path)
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                entry["xattrs"] = {key: os.getxattr(path, key) for key in os.listxattr(path)}
            entries[relname] = entry
    for names in names_of_inode.values():
        for name in names:
            entries[name]["hardlinks"] = sorted(names)
    return entries


def populate(root: Path) -> None:
    """A volume with one of everything: special modes, foreign and large owners, hardlinks,
    every kind of symlink, fifo, xattrs (binary and file capabilities), awkward names, and a
    distinct nanosecond mtime on every entry (one before 1970)."""
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("hello volume\n")
    os.link(root / "docs" / "readme.txt", root / "docs" / "readme-link.txt")
    (root / "bin").mkdir()
    os.link(root / "docs" / "readme.txt", root / "bin" / "alias")
    (root / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 10)
    (root / "bin" / "sgid").write_bytes(b"#!/bin/sh\n")
    (root / "shared").mkdir()
    (root / "setgid-dir").mkdir()
    (root / "empty").mkdir()
    (root / "empty-file").touch()
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "zeros.bin").write_bytes(bytes(1024 * 1024))
    (root / ".wh.not-a-whiteout").write_text("plain file")
    (root / "name with spaces and\nnewline").write_text("odd")
    (root / ODD_NAME).write_text("latin-1 name")
    (root / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / ("f" * 120)).write_text("deep")
    os.symlink("docs/readme.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("no/such/target", root / "dangling-link")
    os.symlink("../../../etc/shadow", root / "climbing-link")
    os.mkfifo(root / "pipe")

    owners = {"docs/readme.txt": (1001, 1002), "bin/tool": (0, 0), "bin/sgid": (0, 50),
              "empty": (100000, 100000), "rel-link": (1001, 1001), "pipe": (33, 33),
              ".": (1000, 1000), "big.bin": (4_000_000, 4_000_001)}
    for name, (uid, gid) in owners.items():
        os.chown(root / name, uid, gid, follow_symlinks=False)
    modes = {"bin/tool": 0o4755, "bin/sgid": 0o2711, "shared": 0o1777, "setgid-dir": 0o2775,
             "empty": 0o700, "pipe": 0o620, ".": 0o750, "empty-file": 0o400}
    for name, mode in modes.items():
        os.chmod(root / name, mode)
    os.setxattr(root / "docs" / "readme.txt", "user.comment", b"shared by three names")
    os.setxattr(root / "big.bin", "user.binary", b"\xff\x00\x01binary")
    os.setxattr(root / "shared", "user.dir", b"on a directory")
    os.setxattr(root, "user.root", b"on the root")
    os.setxattr(root / "bin" / "tool", "security.capability", NET_BIND_CAPABILITY)

    # mtimes last, deepest first, so creating entries does not disturb them.
    every = sorted((p for p in root.rglob("*")), key=lambda p: -len(p.parts))
    for index, path in enumerate(every):
        mtime = 1_234_567_890_123_456_789 + index * 1_000_000_007
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
    os.utime(root / "docs" / "readme-link.txt", ns=(0, -1_500_000_001))  # shared inode
    os.utime(root, ns=(0, 1_700_000_000_999_999_999))


@pytest.fixture
def store(berth_root: Path) -> VolumeStore:
    return VolumeStore(berth_root)


@pytest.fixture
def workdir(berth_root: Path) -> Path:
    """Where tests write archives: inside the root, so the fixture removes them."""
    directory = berth_root / "archives"
    directory.mkdir()
    return directory


@pytest.fixture
def populated(store: VolumeStore) -> Path:
    data = store.create("data").mountpoint
    populate(data)
    return data


@pytest.mark.parametrize("suffix", [".tar", ".tar.zst", ".tar.gz"])
def test_backup_restore_round_trip_preserves_everything(
    store: VolumeStore, populated: Path, workdir: Path, suffix: str,
) -> None:
    original = manifest(populated)
    backup = workdir / f"data{suffix}"
    size = store.backup("data", backup)
    assert size == backup.stat().st_size > 0
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600, "backups hold data: owner-only"

    copy = store.restore("copy", backup)
    assert manifest(copy.mountpoint) == original
    assert manifest(populated) == original, "backup does not change the volume"


def test_zstd_backup_is_compressed_and_plain_is_a_tar(store: VolumeStore, populated: Path,
                                                     workdir: Path) -> None:
    plain, compressed = workdir / "b.tar", workdir / "b.tar.zst"
    store.backup("data", plain)
    store.backup("data", compressed)
    assert compressed.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert compressed.stat().st_size < plain.stat().st_size
    with tarfile.open(plain) as archive:
        assert archive.getnames()[0] == "."
        assert archive.getmember("abs-link").issym()


def test_restore_over_changed_volume_brings_back_the_backup(
    store: VolumeStore, populated: Path, workdir: Path,
) -> None:
    original = manifest(populated)
    inode = os.stat(populated).st_ino
    backup = workdir / "data.tar.zst"
    store.backup("data", backup)
    (populated / "docs" / "readme.txt").write_text("changed")
    (populated / "new-file").write_text("not in the backup")
    (populated / "empty").rmdir()
    os.chmod(populated, 0o777)
    os.chown(populated, 0, 0)

    store.restore("data", backup)
    assert manifest(populated) == original
    assert os.stat(populated).st_ino == inode, "containers bind-mount this very directory"
    assert sorted(os.listdir(populated.parent)) == ["_data", "volume.json"]


def test_backup_of_unchanged_volume_is_identical(store: VolumeStore, populated: Path,
                                                 workdir: Path) -> None:
    store.backup("data", workdir / "one.tar")
    store.backup("data", workdir / "two.tar")
    assert (workdir / "one.tar").read_bytes() == (workdir / "two.tar").read_bytes()


def test_gnu_tar_extracts_a_backup_identically(store: VolumeStore, populated: Path,
                                               workdir: Path) -> None:
    backup = workdir / "data.tar"
    store.backup("data", backup)
    target = workdir / "extracted"
    target.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "--same-permissions", "-xf", str(backup), "-C", str(target)],
                   check=True, capture_output=True)
    assert manifest(target) == manifest(populated)


def test_restore_accepts_an_archive_made_by_gnu_tar(store: VolumeStore, populated: Path,
                                                    workdir: Path) -> None:
    archive = workdir / "gnu.tar"
    subprocess.run(["tar", "--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "-cf", str(archive), "-C", str(populated), "."],
                   check=True, capture_output=True)
    restored = store.restore("from-gnu", archive)
    assert manifest(restored.mountpoint) == manifest(populated)


def test_backup_never_follows_symlinks(store: VolumeStore, workdir: Path) -> None:
    data = store.create("links").mountpoint
    os.symlink("/etc", data / "etc")
    (data / "real").mkdir()
    backup = workdir / "links.tar"
    store.backup("links", backup)
    with tarfile.open(backup) as archive:
        assert sorted(archive.getnames()) == [".", "etc", "real"]
        assert archive.getmember("etc").linkname == "/etc"


def test_backup_skips_sockets(store: VolumeStore, workdir: Path) -> None:
    data = store.create("sock").mountpoint
    (data / "file").write_text("kept")
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(data / "app.sock"))
        store.backup("sock", workdir / "sock.tar")
    finally:
        listener.close()
    restored = store.restore("sock-copy", workdir / "sock.tar")
    assert sorted(os.listdir(restored.mountpoint)) == ["file"]


def test_restore_refused_while_in_use_unless_forced(store: VolumeStore, populated: Path,
                                                    workdir: Path) -> None:
    backup = workdir / "data.tar.zst"
    store.backup("data", backup)
    original = manifest(populated)
    (populated / "written-by-app").write_text("live data")
    in_use = manifest(populated)

    def users(name: str) -> list[str]:
        return ["app"] if name == "data" else []

    with pytest.raises(Conflict, match=r"restore into volume 'data'.*in use.*app"):
        store.restore("data", backup, users=users)
    assert manifest(populated) == in_use

    store.restore("data", backup, users=users, force=True)
    assert manifest(populated) == original


@pytest.fixture
def device_node(store: VolumeStore) -> Iterator[Path]:
    data = store.create("devices").mountpoint
    (data / "a-file").write_bytes(os.urandom(512 * 1024))
    os.mknod(data / "z-null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    yield data


def test_failed_backup_leaves_no_file(store: VolumeStore, device_node: Path,
                                      workdir: Path) -> None:
    backup = workdir / "devices.tar.zst"
    with pytest.raises(Conflict, match="device node 'z-null'"):
        store.backup("devices", backup)
    assert os.listdir(workdir) == []


def test_failed_backup_keeps_the_previous_file(store: VolumeStore, device_node: Path,
                                               workdir: Path) -> None:
    backup = workdir / "devices.tar"
    backup.write_bytes(b"yesterday's backup")
    with pytest.raises(Conflict):
        store.backup("devices", backup)
    assert backup.read_bytes() == b"yesterday's backup"
    assert os.listdir(workdir) == ["devices.tar"]


def test_backup_into_unwritable_directory_leaves_no_file(store: VolumeStore, populated: Path,
                                                         workdir: Path) -> None:
    subprocess.run(["chattr", "+i", str(workdir)], check=True)
    try:
        with pytest.raises(RuntimeFailure, match="choose a writable directory"):
            store.backup("data", workdir / "data.tar")
    finally:
        subprocess.run(["chattr", "-i", str(workdir)], check=True)
    assert os.listdir(workdir) == []


def test_backup_into_missing_directory_is_not_found(store: VolumeStore, populated: Path,
                                                    workdir: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        store.backup("data", workdir / "no" / "such" / "data.tar")
    assert os.listdir(workdir) == []


def test_backup_of_missing_volume_is_not_found(store: VolumeStore, workdir: Path) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        store.backup("ghost", workdir / "ghost.tar")
    assert os.listdir(workdir) == []
