"""Importing and exporting image archives: both formats, compression, whiteouts and opaque
directories in the merged overlay view, and layers shared between images."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from archive_builders import (
    ImageSpec,
    directory,
    file,
    hardlink,
    layer,
    opaque,
    sha256,
    symlink,
    whiteout,
    write_docker_save,
    write_oci_archive,
)

from runtime.errors import Conflict
from runtime.images.archive import export_archive, import_archive
from runtime.images.store import ImageStore

pytestmark = pytest.mark.root


def layered_image(tags: list[str], compressions=(None, "gzip", "zstd")) -> ImageSpec:
    """Three layers: a base tree, then deletions by whiteout and an opaque directory, then a
    whiteout of a whole directory and a file put back."""
    base = layer(
        directory("etc"), file("etc/keep", b"kept\n"), file("etc/gone", b"deleted\n"),
        directory("data"), file("data/old1", b"1"), directory("data/sub"),
        file("data/sub/old2", b"2"), directory("cache"), file("cache/blob", b"c"),
        file("bin-tool", b"#!/bin/sh\n", mode=0o755), hardlink("bin-tool-link", "bin-tool"),
        symlink("etc/alias", "keep"),
        compression=compressions[0],
    )
    middle = layer(
        directory("etc"), whiteout("etc/gone"), file("etc/added", b"new\n"),
        directory("data"), opaque("data"), file("data/fresh", b"f"),
        compression=compressions[1],
    )
    top = layer(whiteout("cache"), directory("etc"), file("etc/gone", b"back again\n"),
                compression=compressions[2])
    return ImageSpec([base, middle, top], tags=tags)


@pytest.fixture
def merged(tmp_path):
    """Mount the image's layers read-only with overlayfs; unmounted after the test."""
    mounts: list[Path] = []

    def mount(layer_dirs: list[Path]) -> Path:
        target = tmp_path / f"merged{len(mounts)}"
        target.mkdir()
        lower = ":".join(str(d) for d in reversed(layer_dirs))  # top layer first
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}",
                        str(target)], check=True)
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", str(target)], check=True)


def assert_merged_view(root: Path) -> None:
    assert (root / "etc/keep").read_bytes() == b"kept\n"
    assert (root / "etc/added").read_bytes() == b"new\n"
    assert (root / "etc/gone").read_bytes() == b"back again\n"
    assert os.readlink(root / "etc/alias") == "keep"
    assert sorted(p.name for p in (root / "data").iterdir()) == ["fresh"]
    assert not (root / "cache").exists()
    assert os.stat(root / "bin-tool").st_mode & 0o777 == 0o755
    assert os.stat(root / "bin-tool").st_ino == os.stat(root / "bin-tool-link").st_ino


def test_import_docker_save_with_whiteouts_gives_the_right_merged_view(host, tmp_path, merged):
    spec = layered_image(["app:1"], compressions=(None, None, None))
    archive = tmp_path / "app.tar"
    write_docker_save(archive, [spec])
    (image,) = import_archive(host.images, archive)
    assert image.id == spec.image_id
    assert image.tags == ["app:1"]
    assert [layer.diff_id for layer in image.layers] == [lay.diff_id for lay in spec.layers]
    assert_merged_view(merged(image.layer_dirs()))


def test_whiteouts_become_overlay_char_devices_and_opaque_xattrs(host, tmp_path):
    archive = tmp_path / "app.tar"
    write_oci_archive(archive, [layered_image(["app:2"])])
    (image,) = import_archive(host.images, archive)
    _base, middle, top = image.layer_dirs()
    gone = os.lstat(middle / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert os.getxattr(middle / "data", "trusted.overlay.opaque") == b"y"
    assert not (middle / "data/.wh..wh..opq").exists()
    cache = os.lstat(top / "cache")
    assert stat.S_ISCHR(cache.st_mode) and cache.st_rdev == os.makedev(0, 0)


def test_import_oci_archive_with_nested_index_and_compressed_layers(host, tmp_path, merged):
    spec = layered_image(["registry.example.com/team/app:2.0"])
    archive = tmp_path / "oci.tar"
    write_oci_archive(archive, [spec], nested_index=True)
    (image,) = import_archive(host.images, archive)
    assert image.id == spec.image_id
    assert image.tags == ["registry.example.com/team/app:2.0"]
    assert [layer.media_type for layer in image.layers] == [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ]
    assert image.manifest_digest == sha256(spec.manifest())
    assert_merged_view(merged(image.layer_dirs()))


def test_import_takes_containerd_names_and_shortens_docker_hub_names(host, tmp_path):
    archive = tmp_path / "oci.tar"
    write_oci_archive(archive, [ImageSpec([layer(file("x"))], tags=["docker.io/library/web:3"])],
                      ref_annotation="io.containerd.image.name")
    (image,) = import_archive(host.images, archive)
    assert image.tags == ["web:3"]


def test_tag_option_replaces_the_archive_names(host, tmp_path):
    archive = tmp_path / "app.tar"
    write_docker_save(archive, [ImageSpec([layer(file("x"))], tags=["orig:1"])])
    (image,) = import_archive(host.images, archive, tag="renamed")
    assert image.tags == ["renamed:latest"]


def test_cli_load_reads_a_gzipped_docker_save_stream_from_stdin(host, tmp_path):
    spec = ImageSpec([layer(file("hello", b"hi"))], tags=["piped:1"])
    archive = tmp_path / "app.tar"
    write_docker_save(archive, [spec])
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        f"gzip -c {archive} | {sys.executable} -m runtime --root {host.root} load",
        shell=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(repo)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == spec.image_id
    assert host.images.get("piped:1").id == spec.image_id


def test_layers_are_stored_once_and_freed_with_the_last_image(host, tmp_path):
    store = host.images
    shared = layer(directory("usr"), file("usr/lib.so", b"shared library"))
    first = ImageSpec([shared, layer(file("first"))], tags=["first:1"])
    second = ImageSpec([shared, layer(file("second"))], tags=["second:1"])
    archive = tmp_path / "two.tar"
    write_docker_save(archive, [first, second])  # the second copy of `shared` is a symlink
    import_archive(store, archive)
    busybox_layers = {layer.diff_id for layer in store.get("busybox").layers}

    def layer_names() -> set[str]:
        return {p.name for p in store.layer_root.iterdir() if not p.name.startswith(".")}

    def blob_names() -> set[str]:
        return {p.name for p in store.blob_dir.iterdir()}

    shared_dir = store.layer_dir(shared.diff_id)
    assert len(layer_names()) == 3 + len(busybox_layers)
    unpacked_at = shared_dir.stat().st_ino

    # Importing the same images again unpacks nothing new.
    write_oci_archive(tmp_path / "again.tar", [first])
    import_archive(store, tmp_path / "again.tar")
    assert shared_dir.stat().st_ino == unpacked_at

    store.remove("first:1")
    assert shared_dir.is_dir()
    assert store.layer_dir(first.layers[1].diff_id).exists() is False
    assert first.image_id[7:] not in blob_names()
    assert shared.digest[7:] in blob_names()

    store.remove("second:1")
    assert not shared_dir.exists()
    assert layer_names() == {d[7:] for d in busybox_layers}
    busybox = store.get("busybox")
    assert blob_names() == {busybox.id[7:], busybox.manifest_digest[7:],
                            *(layer.digest[7:] for layer in busybox.layers)}


def test_remove_is_refused_while_a_container_uses_the_image(host, tmp_path):
    image = host.images.get("busybox")
    with pytest.raises(Conflict, match="web-1"):
        host.images.remove("busybox", users=lambda image_id: ["web-1"]
                           if image_id == image.id else [])
    assert host.images.get("busybox").id == image.id


def test_export_then_import_round_trips_manifest_and_layers(host, tmp_path):
    archive = tmp_path / "app.tar"
    spec = layered_image(["app:5"])
    write_oci_archive(archive, [spec])
    (original,) = import_archive(host.images, archive)
    exported = tmp_path / "exported.tar"
    export_archive(host.images, ["app:5", "busybox"], exported)

    with tarfile.open(exported) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))
        docker_manifest = json.load(tar.extractfile("manifest.json"))
    assert "oci-layout" in names
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] \
        == ["app:5", "busybox:latest"]
    assert index["manifests"][0]["digest"] == original.manifest_digest
    assert docker_manifest[0]["RepoTags"] == ["app:5"]
    assert all(name in names for name in docker_manifest[0]["Layers"])

    fresh = ImageStore(host.root / "second-store")
    images = import_archive(fresh, exported)
    assert [(i.id, i.tags, i.manifest_digest) for i in images] == [
        (original.id, ["app:5"], original.manifest_digest),
        (host.images.get("busybox").id, ["busybox:latest"],
         host.images.get("busybox").manifest_digest),
    ]


def test_cli_image_verbs_list_inspect_tag_and_remove(host, cli, tmp_path):
    archive = tmp_path / "app.tar"
    spec = ImageSpec([layer(file("x", b"x" * 5000))], tags=["app:1"])
    write_docker_save(archive, [spec])

    imported = cli("image", "import", str(archive))
    assert imported.stdout.strip() == spec.image_id
    loaded = cli("load", "-i", str(archive), "--json")
    assert json.loads(loaded.stdout) == [{"Id": spec.image_id, "RepoTags": ["app:1"]}]

    cli("image", "tag", "app:1", "localhost:5000/app:2")
    cli("tag", spec.image_id[7:19], "other")
    table = cli("image", "ls").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in table[1:]}
    assert {("app", "1", spec.image_id[7:19]), ("localhost:5000/app", "2", spec.image_id[7:19]),
            ("other", "latest", spec.image_id[7:19])} <= rows
    assert spec.image_id[7:19] in cli("images", "-q").stdout.split()

    (inspected,) = json.loads(cli("image", "inspect", "app:1").stdout)
    assert inspected["Id"] == spec.image_id
    assert inspected["RepoTags"] == ["app:1", "localhost:5000/app:2", "other:latest"]
    assert inspected["Config"]["Cmd"] == ["sh"]
    assert inspected["RootFS"] == {"Type": "layers", "Layers": [spec.layers[0].diff_id]}
    assert inspected["Os"] == "linux" and inspected["Size"] == len(spec.layers[0].blob)

    assert cli("rmi", "other").stdout.strip() == "Untagged: other:latest"
    removed = cli("image", "rm", "-f", "app:1").stdout.splitlines()
    assert removed[-1] == f"Deleted: {spec.image_id}"
    missing = cli("image", "inspect", "app:1", check=False)
    assert missing.returncode != 0 and "no such image" in missing.stderr


def test_cli_export_and_save_write_oci_archives(host, cli, tmp_path):
    exported = tmp_path / "busybox.tar"
    cli("image", "export", "busybox", str(exported))
    saved = tmp_path / "saved.tar"
    cli("save", "-o", str(saved), "busybox:latest")
    for archive in (exported, saved):
        with tarfile.open(archive) as tar:
            index = json.load(tar.extractfile("index.json"))
        assert index["manifests"][0]["digest"] == host.images.get("busybox").manifest_digest
    assert not list(tmp_path.glob(".*")), "a temporary file was left next to the archive"
    refused = cli("image", "export", "nonexistent", str(tmp_path / "x.tar"), check=False)
    assert refused.returncode != 0 and "no such image" in refused.stderr
    assert not (tmp_path / "x.tar").exists()


def test_cli_image_rm_is_refused_while_a_container_uses_it(host, cli):
    cli("create", "--name", "holds-busybox", "busybox", "true")
    refused = cli("image", "rm", "busybox", check=False)
    assert refused.returncode != 0
    assert "holds-busybox" in refused.stderr
    assert host.images.get("busybox:latest")
    cli("rm", "holds-busybox")
    assert cli("rmi", "busybox").stdout.splitlines()[-1].startswith("Deleted: sha256:")
    assert host.images.list() == []


def test_oci_index_listing_one_manifest_under_two_names_imports_one_image(host, tmp_path):
    spec = ImageSpec([layer(file("x"))], tags=["one:1", "localhost/two:2"])
    archive = tmp_path / "names.tar"
    write_oci_archive(archive, [spec])
    (image,) = import_archive(host.images, archive)
    assert image.tags == ["localhost/two:2", "one:1"]


def test_removing_an_image_during_an_import_keeps_the_import_blobs(host, tmp_path):
    store = host.images
    import_archive(store, _archive(tmp_path, ImageSpec([layer(file("old"))], tags=["old:1"])))
    with store.ingesting() as ingest:
        in_flight = ingest.put_blob_bytes(b"a layer on its way in")
        store.remove("old:1")  # its garbage collection must not take the in-flight blob
        assert store.has_blob(in_flight)
    store.remove("busybox")  # nothing running now: this collection frees the orphan
    assert not store.has_blob(in_flight)
    assert not any(store.blob_dir.iterdir())


def test_failed_ingest_removes_only_what_it_added(host):
    store = host.images
    busybox = store.get("busybox")
    with pytest.raises(RuntimeError), store.ingesting() as ingest:
        ingest.put_blob_bytes(store.read_blob(busybox.id))  # already there: not "added"
        added = ingest.put_blob_bytes(b"new")
        raise RuntimeError("the pull broke off")
    assert not store.has_blob(added)
    assert store.has_blob(busybox.id)


def _archive(tmp_path: Path, spec: ImageSpec) -> Path:
    path = tmp_path / f"{spec.image_id[7:19]}.tar"
    write_docker_save(path, [spec])
    return path
