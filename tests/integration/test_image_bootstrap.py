"""Base images made on this host: busybox from busybox-static, debian with debootstrap."""

from __future__ import annotations

import os
import stat

import pytest

pytestmark = pytest.mark.root


def test_bootstrap_busybox_makes_a_runnable_tagged_image(berth_root, cli):
    image_id = cli("image", "bootstrap", "busybox").stdout.strip()
    from runtime.images.store import ImageStore

    image = ImageStore(berth_root).get("busybox:latest")
    assert image.id == image_id
    assert image.runtime_config["Cmd"] == ["sh"]
    (layer_dir,) = image.layer_dirs()
    assert os.access(layer_dir / "bin/busybox", os.X_OK)
    assert os.readlink(layer_dir / "bin/sh") == "busybox"
    assert cli("run", "--rm", "busybox", "echo", "bootstrapped").stdout == "bootstrapped\n"


def test_bootstrap_debian_makes_a_minbase_image_without_device_nodes(berth_root, cli):
    # debootstrap from the Debian mirror apt uses: about a minute here.
    image_id = cli("image", "bootstrap", "debian", "--tag", "debian:test", timeout=900)
    from runtime.images.store import ImageStore

    image = ImageStore(berth_root).get("debian:test")
    assert image.id == image_id.stdout.strip()
    assert image.runtime_config["Cmd"] == ["bash"]
    (layer_dir,) = image.layer_dirs()
    assert (layer_dir / "etc/debian_version").is_file()
    assert not list((layer_dir / "var/cache/apt/archives").glob("*.deb"))
    for path in (layer_dir / "dev").rglob("*"):
        mode = os.lstat(path).st_mode
        assert not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)), f"device node {path} kept"
    result = cli("run", "--rm", "debian:test", "sh", "-c", "dpkg-query -W -f='${Package}\\n' "
                 "bash coreutils && . /etc/os-release && echo $ID")
    assert result.stdout.split() == ["bash", "coreutils", "debian"]
