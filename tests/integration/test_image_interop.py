"""Archives exchanged with the real tools: skopeo reads what Berth exports, podman loads and runs
it with the same result as Berth, and Berth imports what skopeo and podman write."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from runtime.images.archive import import_archive
from runtime.images.store import ImageStore

pytestmark = pytest.mark.root

PROBE = ["sh", "-c", "echo hi; ls /bin | wc -l; hostname; id"]


def run(*command: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result


def wait_for_podman_conmon_exit(container_name: str) -> None:
    """`podman run --rm` can return before its conmon has finished cleaning up; wait for that
    conmon to go so the suite's leak check does not count it."""
    for _ in range(100):
        found = subprocess.run(["pgrep", "-f", f"conmon .*-n {container_name} "],
                               capture_output=True).returncode == 0
        if not found:
            return
        time.sleep(0.1)
    raise AssertionError(f"podman's conmon for {container_name} did not exit")


def test_skopeo_inspects_the_exported_archive(host, cli, tmp_path):
    archive = tmp_path / "busybox.tar"
    cli("image", "export", "busybox", str(archive))
    inspected = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}").stdout)
    image = host.images.get("busybox")
    assert inspected["Digest"] == image.manifest_digest
    assert inspected["Layers"] == [layer.digest for layer in image.layers]
    assert inspected["Os"] == "linux"
    raw_config = json.loads(run("skopeo", "inspect", "--config", f"oci-archive:{archive}").stdout)
    assert raw_config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]


def test_podman_runs_the_exported_image_like_berth_and_saves_it_back(host, cli, tmp_path):
    name = f"localhost/berth-interop-{uuid.uuid4().hex[:8]}:1"
    cli("image", "tag", "busybox", name)
    archive = tmp_path / "export.tar"
    cli("image", "export", name, str(archive))
    try:
        loaded = run("podman", "load", "-i", str(archive))
        assert name in loaded.stdout
        container_name = f"berth-interop-{uuid.uuid4().hex[:8]}"
        try:
            under_podman = run("podman", "run", "--rm", "--name", container_name,
                               "--hostname", "probe", name, *PROBE).stdout
        finally:
            wait_for_podman_conmon_exit(container_name)
        under_berth = cli("run", "--rm", "--hostname", "probe", name, *PROBE).stdout
        assert under_podman == under_berth
        assert under_berth.startswith("hi\n")

        # podman's default `save` format is docker-archive: a real `docker save` layout.
        saved = tmp_path / "podman-save.tar"
        run("podman", "save", "-o", str(saved), name)
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True)
    fresh = ImageStore(host.root / "from-podman")
    (image,) = import_archive(fresh, saved)
    assert image.id == host.images.get(name).id
    assert image.tags == [name]


def test_skopeo_recompressed_archive_imports_as_the_same_image(host, cli, tmp_path):
    exported = tmp_path / "busybox.tar"
    cli("image", "export", "busybox", str(exported))
    copied = tmp_path / "gzip.tar"
    run("skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", "gzip",
        f"oci-archive:{exported}", f"oci-archive:{copied}:copies/busybox:gz")
    imported = cli("image", "import", str(copied)).stdout.strip()
    image = host.images.get("copies/busybox:gz")
    assert imported == image.id == host.images.get("busybox").id
    assert [layer.media_type for layer in image.layers] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ]
    assert image.layer_dirs() == host.images.get("busybox").layer_dirs()
