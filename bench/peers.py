"""The peers Berth is measured against, prepared the same way every benchmark needs them:

- `RuncFloor`: bare `runc run -d` of a prepared bundle (the floor no engine can beat);
- `Podman`: Debian's podman with the same busybox root filesystem imported as an image.

Both leave nothing behind after `close()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

from runtime.images.bootstrap import busybox_tree

PODMAN_IMAGE = "localhost/berth-bench-busybox"  # + a per-instance suffix (see Podman.image)


def busybox_archive(directory: Path) -> Path:
    """The busybox root filesystem every peer runs, as a tar in `directory` (for `import`)."""
    tree = directory / "rootfs"
    tree.mkdir()
    busybox_tree(tree)
    archive = directory / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(tree.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


class RuncFloor:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="berth-bench-runc-", dir="/var/tmp"))
        self.state = self.workdir / "state"
        self.bundle = self.workdir / "bundle"
        (self.bundle / "rootfs").mkdir(parents=True)
        busybox_tree(self.bundle / "rootfs")
        subprocess.run(["runc", "spec"], cwd=self.bundle, check=True)
        config = json.loads((self.bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["sleep", "3600"]
        config["root"]["readonly"] = True
        (self.bundle / "config.json").write_text(json.dumps(config))
        self.ids: list[str] = []

    def start(self) -> str:
        """`runc run -d`: create and start; returns once the process runs."""
        container_id = f"bench-{uuid.uuid4().hex[:12]}"
        subprocess.run(
            ["runc", "--root", str(self.state), "run", "-d", "--bundle", str(self.bundle),
             container_id],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ids.append(container_id)
        return container_id

    def remove_all(self) -> None:
        for container_id in self.ids:
            subprocess.run(["runc", "--root", str(self.state), "delete", "-f", container_id],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ids.clear()

    def close(self) -> None:
        self.remove_all()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Podman:
    def __init__(self) -> None:
        if shutil.which("podman") is None:
            raise RuntimeError("podman is not installed; run `make setup`")
        # One tag per instance: benchmarks running at the same time must not untag (or
        # `rmi -f`, which also kills its containers) each other's image.
        self.image = f"{PODMAN_IMAGE}-{uuid.uuid4().hex[:12]}:latest"
        with tempfile.TemporaryDirectory(prefix="berth-bench-podman-", dir="/var/tmp") as tmp:
            archive = busybox_archive(Path(tmp))
            subprocess.run(["podman", "import", "--change", "CMD [\"sh\"]", str(archive),
                            self.image], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.ids: list[str] = []

    def run(self, *args: str, command: tuple[str, ...] = ("sleep", "3600")) -> str:
        """`podman run -d [ARGS] IMAGE COMMAND` (COMMAND `sleep 3600` unless given); returns
        the container id."""
        out = subprocess.run(
            ["podman", "run", "-d", *args, self.image, *command],
            check=True, capture_output=True, text=True,
        )
        container_id = out.stdout.strip()
        self.ids.append(container_id)
        return container_id

    def remove_all(self) -> None:
        if self.ids:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *self.ids],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ids.clear()

    def close(self) -> None:
        self.remove_all()
        subprocess.run(["podman", "rmi", "-f", self.image], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class Dockerd:
    """A Docker Engine started by hand (PEERS.md): its own data and exec roots and socket, no
    iptables rules, the same busybox root filesystem imported as an image. `env` points the
    docker CLI at it. `close()` stops it and removes what it made (its docker0 bridge too)."""

    def __init__(self) -> None:
        if shutil.which("dockerd") is None:
            raise RuntimeError("dockerd is not installed: apt-get install docker.io")
        self.workdir = Path(tempfile.mkdtemp(prefix="berth-bench-dockerd-", dir="/var/tmp"))
        socket = self.workdir / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{socket}",
                    "DOCKER_CONFIG": str(self.workdir / "config")}
        self.log = open(self.workdir / "dockerd.log", "wb")  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            ["dockerd", "--data-root", str(self.workdir / "data"), "--exec-root",
             str(self.workdir / "exec"), "-H", f"unix://{socket}", "--pidfile",
             str(self.workdir / "dockerd.pid"), "--default-ulimit", "nofile=1024:1024",
             "--iptables=false", "--ip6tables=false"], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("dockerd did not start: see its log")
            time.sleep(0.2)
        self.image = "berth-bench-busybox:latest"
        with tempfile.TemporaryDirectory(prefix="berth-bench-docker-", dir="/var/tmp") as tmp:
            archive = busybox_archive(Path(tmp))
            subprocess.run(["docker", "import", "--change", "CMD [\"sh\"]", str(archive),
                            self.image], env=self.env, check=True, capture_output=True)
        self.ids: list[str] = []

    def run(self, *args: str, command: tuple[str, ...] = ("sleep", "3600")) -> str:
        """`docker run -d [ARGS] IMAGE COMMAND`; returns the container id (it runs by then)."""
        out = subprocess.run(["docker", "run", "-d", *args, self.image, *command],
                             env=self.env, check=True, capture_output=True, text=True)
        self.ids.append(out.stdout.strip())
        return self.ids[-1]

    def remove_all(self) -> None:
        if self.ids:
            subprocess.run(["docker", "rm", "-f", *self.ids], env=self.env,
                           capture_output=True)
        self.ids.clear()

    def close(self) -> None:
        if self.process.poll() is None:
            self.remove_all()
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True)
        subprocess.run(["umount", "-R", str(self.workdir)], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
