"""Docker's copy-up into empty volumes: path resolution inside the root, the copy itself, and a
container whose image has content at its volume's mount path (real runc and overlayfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.containers.options import RunOptions
from runtime.volumes.populate import copy_image_content, resolve_in_root

pytestmark = pytest.mark.root


def _tree(root: Path) -> Path:
    (root / "srv/app/conf").mkdir(parents=True)
    (root / "srv/app/conf/app.ini").write_text("x=1\n")
    os.symlink("app.ini", root / "srv/app/conf/link")
    os.chown(root / "srv/app", 70, 80)
    os.chmod(root / "srv/app", 0o750)
    return root


def test_symlinks_resolve_inside_the_root_never_above_it(tmp_path):
    root = _tree(tmp_path / "rootfs")
    os.symlink("/srv/app", root / "current")  # absolute: relative to the root, not the host
    os.symlink("../../../../..", root / "srv/up")
    assert resolve_in_root(root, "/current/conf") == root / "srv/app/conf"
    assert resolve_in_root(root, "/srv/up/srv/app") == root / "srv/app"
    assert resolve_in_root(root, "/missing") is None
    os.symlink("loop", root / "loop")
    assert resolve_in_root(root, "/loop") is None


def test_an_empty_volume_gets_the_content_with_owner_and_mode(tmp_path):
    root = _tree(tmp_path / "rootfs")
    volume = tmp_path / "volume"
    volume.mkdir()
    assert copy_image_content(root, "/srv/app", volume) is True
    assert (volume / "conf/app.ini").read_text() == "x=1\n"
    assert os.readlink(volume / "conf/link") == "app.ini"
    info = volume.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (70, 80, 0o750)


def test_a_volume_with_content_or_a_path_the_image_lacks_is_left_alone(tmp_path):
    root = _tree(tmp_path / "rootfs")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "mine").write_text("user data")
    assert copy_image_content(root, "/srv/app", volume) is False
    assert sorted(os.listdir(volume)) == ["mine"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert copy_image_content(root, "/nowhere", empty) is False
    assert copy_image_content(root, "/srv/app/conf/app.ini", empty) is False  # not a directory
    assert os.listdir(empty) == []


@pytest.fixture
def seeded_image(host, tmp_path):
    """busybox plus a layer with /data/seed (owned by daemon, 1:1) and a whiteout-free
    /data/sub; its config declares /data a volume and runs as daemon."""
    from runtime.images.builder import image_from_layers, tar_directory

    tree = tmp_path / "layer"
    (tree / "data/sub").mkdir(parents=True)
    (tree / "data/seed").write_text("from the image\n")
    for path in (tree / "data", tree / "data/seed"):
        os.chown(path, 1, 1)
    base = host.images.get("busybox")
    layer = host.images.read_blob(base.layers[0].digest)
    image_from_layers(host.images, [layer, tar_directory(tree)],
                      {"Cmd": ["sh"], "User": "daemon", "Volumes": {"/data": {}}},
                      tags=["seeded:latest"])
    return "seeded"


def _run(host, image: str, script: str, volumes: list[str]) -> str:
    container = host.containers.run(RunOptions(image=image, command=["sh", "-c", script],
                                               volumes=volumes))
    assert host.containers.wait(container.id, timeout=30) == 0
    text = "".join(line.split(" ", 3)[3] + "\n"
                   for line in container.log_path.read_text().splitlines())
    host.containers.remove(container.id, volumes=True)
    return text


def test_a_new_volume_gets_the_images_content_and_keeps_the_users_changes(host, seeded_image):
    # the image's user can write: the volume root took the owner of the image's /data
    assert _run(host, seeded_image, "cat /data/seed; echo mine > /data/new; stat -c %u /data",
                ["app-data:/data"]) == "from the image\n1\n"
    # once it has content the volume is the user's: nothing is copied again
    assert _run(host, seeded_image, "rm /data/seed; ls /data", ["app-data:/data"]) == (
        "new\nsub\n")
    assert _run(host, seeded_image, "ls /data", ["app-data:/data"]) == "new\nsub\n"
    # another image mounting the same volume sees the same files
    assert _run(host, "busybox", "cat /data/new", ["app-data:/data"]) == "mine\n"
    host.volumes.remove("app-data")


def test_anonymous_volumes_are_seeded_and_nocopy_keeps_a_volume_empty(host, seeded_image):
    assert _run(host, seeded_image, "cat /data/seed", []) == "from the image\n"
    assert _run(host, seeded_image, "ls -A /data | wc -l", ["bare:/data:nocopy"]) == "0\n"
    host.volumes.remove("bare")
