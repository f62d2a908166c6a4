"""Unsafe image archives: every refused case names the entry, writes nothing outside the layer,
and leaves the store exactly as it was (no blobs, no layers, no index entry)."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import pytest
from archive_builders import (
    ImageSpec,
    device,
    directory,
    file,
    hardlink,
    layer,
    symlink,
    write_docker_save,
    write_oci_archive,
)

from runtime.errors import DigestMismatch, ImageError, UnsafeArchive
from runtime.images.archive import import_archive

pytestmark = pytest.mark.root


def store_state(root: Path) -> dict[str, bytes | None]:
    """Every path under the runtime root, with file contents, except lock files."""
    state: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.name.endswith(".lock"):
            continue
        state[relative] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return state


@pytest.fixture
def escape_target() -> Path:
    """A path outside the runtime root that no refused entry may create."""
    target = Path(f"/tmp/berth-escape-{uuid.uuid4().hex[:8]}")
    yield target
    assert not target.exists(), f"an archive entry escaped to {target}"


def base_layer():
    return layer(directory("etc"), file("etc/hostname", b"base\n"), directory("bin"))


def assert_refused(host, tmp_path: Path, bad_layer, error: type[Exception], entry: str) -> None:
    """Import [good base layer, bad layer] as a `docker save` archive and check the refusal."""
    archive = tmp_path / "bad.tar"
    write_docker_save(archive, [ImageSpec([base_layer(), bad_layer], tags=["bad:1"])])
    before = store_state(host.root)
    with pytest.raises(error) as raised:
        import_archive(host.images, archive)
    assert entry in str(raised.value), f"error does not name {entry!r}: {raised.value}"
    assert store_state(host.root) == before, "the failed import left something in the store"
    assert [image.tags for image in host.images.list()] == [["busybox:latest"]]


def test_import_rejects_dotdot_path(host, tmp_path, escape_target):
    name = "etc/" + "../" * 12 + escape_target.relative_to("/").as_posix()
    assert_refused(host, tmp_path, layer(file(name, b"x")), UnsafeArchive, name)


def test_import_rejects_absolute_path(host, tmp_path, escape_target):
    assert_refused(host, tmp_path, layer(file(str(escape_target), b"x")), UnsafeArchive,
                   str(escape_target))


def test_import_rejects_symlink_escape(host, tmp_path, escape_target):
    target = "../" * 12 + escape_target.relative_to("/").as_posix()
    bad = layer(symlink("etc/out", target), file("etc/out/payload", b"x"))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "etc/out")


def test_import_rejects_hardlink_escape(host, tmp_path):
    bad = layer(hardlink("etc/shadow-copy", "../../../../../../etc/shadow"))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "etc/shadow-copy")


def test_import_rejects_hardlink_to_absolute_path(host, tmp_path):
    bad = layer(hardlink("etc/passwd-copy", "/etc/passwd"))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "etc/passwd-copy")


def test_import_rejects_hardlink_to_file_of_a_lower_layer(host, tmp_path):
    # Each layer is unpacked on its own; a link to a lower layer's file has nothing to point at.
    bad = layer(hardlink("etc/hostname-copy", "etc/hostname"))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "etc/hostname-copy")


def test_import_rejects_write_through_symlinked_parent(host, tmp_path, escape_target):
    # An absolute symlink is fine on its own (the kernel resolves it inside the container), but
    # nothing may be written through it while unpacking.
    bad = layer(symlink("etc/tmp", "/tmp"), file(f"etc/tmp/{escape_target.name}", b"x"))
    assert_refused(host, tmp_path, bad, UnsafeArchive, f"etc/tmp/{escape_target.name}")


def test_import_rejects_character_device(host, tmp_path):
    bad = layer(directory("dev"), device("dev/mem", tarfile.CHRTYPE, 1, 1))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "dev/mem")


def test_import_rejects_block_device(host, tmp_path):
    bad = layer(directory("dev"), device("dev/sda", tarfile.BLKTYPE, 8, 0))
    assert_refused(host, tmp_path, bad, UnsafeArchive, "dev/sda")


def test_import_rejects_docker_layer_whose_digest_is_not_its_diff_id(host, tmp_path):
    good = layer(file("app", b"genuine"))
    archive = tmp_path / "tampered.tar"
    spec = ImageSpec([base_layer(), good], tags=["tampered:1"])
    layer_name = write_docker_save(archive, [spec])[0]["Layers"][1]
    write_docker_save(archive, [spec], replace={layer_name: layer(file("app", b"evil")).blob})
    before = store_state(host.root)
    with pytest.raises(DigestMismatch, match=layer_name):
        import_archive(host.images, archive)
    assert store_state(host.root) == before


def test_import_rejects_oci_blob_whose_content_does_not_match_its_name(host, tmp_path):
    spec = ImageSpec([base_layer(), layer(file("app", b"genuine"))], tags=["tampered:2"])
    entry = f"blobs/sha256/{spec.layers[1].digest[7:]}"
    archive = tmp_path / "tampered.tar"
    write_oci_archive(archive, [spec], replace={entry: layer(file("app", b"evil!!!")).blob})
    before = store_state(host.root)
    with pytest.raises(DigestMismatch, match=entry):
        import_archive(host.images, archive)
    assert store_state(host.root) == before


def test_import_rejects_docker_config_whose_content_does_not_match_its_name(host, tmp_path):
    spec = ImageSpec([base_layer()], tags=["tampered:3"])
    config_name = f"{spec.image_id[7:]}.json"
    archive = tmp_path / "tampered.tar"
    write_docker_save(archive, [spec], replace={config_name: spec.config().replace(b"sh", b"id")})
    before = store_state(host.root)
    with pytest.raises(DigestMismatch, match=config_name):
        import_archive(host.images, archive)
    assert store_state(host.root) == before


def test_import_rejects_compressed_layer_that_unpacks_to_another_diff_id(host, tmp_path):
    # The blob matches its own digest, but the config promises different content: found only
    # when unpacking, after the base layer is already unpacked, which must then go again.
    honest = layer(file("app", b"promised"), compression="gzip")
    swapped = layer(file("app", b"delivered"), compression="gzip")
    spec = ImageSpec([base_layer(), honest], tags=["tampered:4"])
    spec_config = spec.config()
    spec.layers[1] = swapped
    spec.config = lambda: spec_config  # type: ignore[method-assign]
    archive = tmp_path / "tampered.tar"
    write_oci_archive(archive, [spec])
    before = store_state(host.root)
    with pytest.raises(DigestMismatch, match=honest.diff_id):
        import_archive(host.images, archive)
    assert store_state(host.root) == before


def test_import_of_two_images_keeps_neither_when_the_second_is_unsafe(host, tmp_path):
    first = ImageSpec([base_layer()], tags=["first:1"])
    second = ImageSpec([base_layer(), layer(file("/etc/evil", b"x"))], tags=["second:1"])
    archive = tmp_path / "two.tar"
    write_docker_save(archive, [first, second])
    before = store_state(host.root)
    with pytest.raises(UnsafeArchive, match="/etc/evil"):
        import_archive(host.images, archive)
    assert store_state(host.root) == before


def test_import_rejects_archive_missing_a_blob(host, tmp_path):
    spec = ImageSpec([base_layer()], tags=["missing:1"])
    archive = tmp_path / "missing.tar"
    write_oci_archive(archive, [spec])
    with tarfile.open(archive) as original, tarfile.open(tmp_path / "cut.tar", "w") as cut:
        for member in original:
            if member.name != f"blobs/sha256/{spec.layers[0].digest[7:]}":
                cut.addfile(member, original.extractfile(member))
    before = store_state(host.root)
    with pytest.raises(ImageError, match=spec.layers[0].digest):
        import_archive(host.images, tmp_path / "cut.tar")
    assert store_state(host.root) == before


def test_import_keeps_absolute_symlinks_without_following_them(host, tmp_path):
    archive = tmp_path / "links.tar"
    spec = ImageSpec([layer(directory("etc"), symlink("etc/mtab", "/proc/self/mounts"),
                            symlink("etc/shadow", "/etc/shadow"))], tags=["links:1"])
    write_docker_save(archive, [spec])
    (image,) = import_archive(host.images, archive)
    (layer_dir,) = image.layer_dirs()
    assert (layer_dir / "etc/mtab").readlink() == Path("/proc/self/mounts")
    assert (layer_dir / "etc/shadow").is_symlink()


def test_cli_import_of_unsafe_archive_names_the_entry_and_fails(host, cli, tmp_path):
    archive = tmp_path / "bad.tar"
    write_docker_save(archive, [ImageSpec([layer(file("../../escape", b"x"))], tags=["bad:2"])])
    result = cli("image", "import", str(archive), check=False)
    assert result.returncode != 0
    assert "../../escape" in result.stderr and "refused" in result.stderr
    assert result.stdout == ""
    assert "bad" not in cli("image", "ls").stdout
