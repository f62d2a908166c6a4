"""What a layer keeps when unpacked: owners, modes, times, special files, xattrs; and the
compressed streams it is read from."""

from __future__ import annotations

import gzip
import os
import stat
import tarfile

import pytest
from archive_builders import directory, file, layer, sha256

from runtime.errors import ImageError
from runtime.images.unpack import unpack_layer

pytestmark = pytest.mark.root


def unpack(tmp_path, blob: bytes):
    source = tmp_path / "blob"
    source.write_bytes(blob)
    dest = tmp_path / "diff"
    dest.mkdir()
    return unpack_layer(source, dest), dest


def test_unpack_keeps_owners_modes_times_fifos_and_user_xattrs(tmp_path):
    owned, owned_data = file("srv/data", b"payload", mode=0o4750)
    owned.uid, owned.gid = 1234, 5678
    owned.pax_headers = {"SCHILY.xattr.user.origin": "layer-test"}
    fifo = tarfile.TarInfo("srv/pipe")
    fifo.type = tarfile.FIFOTYPE
    fifo.mode = 0o620
    fifo.mtime = 1_600_000_000
    private, _ = directory("srv/private", mode=0o700)
    private.mtime = 1_500_000_000
    built = layer(directory("srv"), (owned, owned_data), (fifo, None), (private, None))
    diff_id, dest = unpack(tmp_path, built.blob)
    assert diff_id == built.diff_id

    data = os.lstat(dest / "srv/data")
    assert (data.st_uid, data.st_gid) == (1234, 5678)
    assert stat.S_IMODE(data.st_mode) == 0o4750
    assert int(data.st_mtime) == owned.mtime
    assert os.getxattr(dest / "srv/data", "user.origin") == b"layer-test"
    pipe = os.lstat(dest / "srv/pipe")
    assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o620
    assert int(os.lstat(dest / "srv/private").st_mtime) == 1_500_000_000
    assert stat.S_IMODE(os.lstat(dest / "srv/private").st_mode) == 0o700


def test_later_entries_replace_earlier_ones_of_another_type(tmp_path):
    built = layer(directory("x"), file("x/inner", b"1"), file("x", b"now a file"),
                  file("y", b"a file"), directory("y"), file("y/inner", b"2"))
    _, dest = unpack(tmp_path, built.blob)
    assert (dest / "x").read_bytes() == b"now a file"
    assert (dest / "y/inner").read_bytes() == b"2"


def test_highly_compressed_gzip_layer_streams_to_the_right_diff_id(tmp_path):
    zeros = b"\0" * (32 << 20)
    built = layer(file("zeros", zeros), compression="gzip")
    assert len(built.blob) < len(zeros) // 100
    diff_id, dest = unpack(tmp_path, built.blob)
    assert diff_id == built.diff_id
    assert (dest / "zeros").stat().st_size == len(zeros)


def test_concatenated_gzip_members_are_one_layer(tmp_path):
    raw = layer(file("a", b"A" * 1000), file("b", b"B" * 1000)).raw
    split = len(raw) // 2
    blob = gzip.compress(raw[:split]) + gzip.compress(raw[split:])
    diff_id, dest = unpack(tmp_path, blob)
    assert diff_id == sha256(raw)
    assert (dest / "b").read_bytes() == b"B" * 1000


def test_zstd_layer_unpacks(tmp_path):
    built = layer(file("z", b"zstd content"), compression="zstd")
    diff_id, dest = unpack(tmp_path, built.blob)
    assert diff_id == built.diff_id
    assert (dest / "z").read_bytes() == b"zstd content"


def test_truncated_gzip_layer_is_an_error(tmp_path):
    built = layer(file("data", os.urandom(200_000)), compression="gzip")
    with pytest.raises(ImageError, match="truncated"):
        unpack(tmp_path, built.blob[: len(built.blob) // 2])


def test_layer_that_is_not_a_tar_is_an_error(tmp_path):
    with pytest.raises(ImageError, match="not a readable tar"):
        unpack(tmp_path, b"this is not a tar archive at all" * 40)
