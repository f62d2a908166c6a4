"""Base images made on this host, so a fresh machine can run containers with no registry.

`busybox`: Debian's busybox-static binary plus a symlink per applet (about 2 MB).
`debian`: a debootstrap minbase tree of the host's release (a few hundred MB, takes minutes).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from runtime.errors import InvalidArgument, RuntimeFailure
from runtime.images.builder import image_from_directories
from runtime.images.store import Image, ImageStore

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _static_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.exists():
            out = subprocess.run(["file", "-L", str(path)], capture_output=True, text=True)
            if out.returncode != 0 or "static" in out.stdout or "dynamic" not in out.stdout:
                return path
    raise RuntimeFailure(
        "busybox-static is not installed; run `make setup` (apt-get install busybox-static)"
    )


def busybox_tree(target: Path) -> None:
    """Lay out a minimal root filesystem around busybox in `target`."""
    busybox = _static_busybox()
    for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "var/tmp", "home", "run"):
        (target / directory).mkdir(parents=True, exist_ok=True)
    (target / "tmp").chmod(0o1777)
    (target / "var/tmp").chmod(0o1777)
    (target / "root").chmod(0o700)
    shutil.copy2(busybox, target / "bin/busybox")
    (target / "bin/busybox").chmod(0o755)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = target / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (target / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (target / "etc/group").write_text("root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
    (target / "etc/hostname").write_text("busybox\n")


def bootstrap_busybox(store: ImageStore, tag: str = "busybox:latest") -> Image:
    """Make `tag` from Debian's busybox-static: one small layer, `sh` as its command."""
    with tempfile.TemporaryDirectory(prefix="berth-bootstrap-") as tmp:
        tree = Path(tmp) / "rootfs"
        tree.mkdir()
        busybox_tree(tree)
        config = {"Env": [DEFAULT_PATH], "Cmd": ["sh"]}
        return image_from_directories(store, [tree], config, tags=[tag],
                                      history=["berth bootstrap busybox (busybox-static)"])


def _debian_mirror() -> str:
    """The Debian mirror apt on this host uses, so debootstrap goes where apt is allowed to."""
    for sources in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    list_file = Path("/etc/apt/sources.list")
    if list_file.exists():
        for line in list_file.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[0] == "deb" and "security" not in fields[1]:
                return fields[1] if not fields[1].startswith("[") else fields[2]
    return "http://deb.debian.org/debian"


def bootstrap_debian(store: ImageStore, tag: str = "debian:latest",
                     suite: str | None = None) -> Image:
    """Make `tag` with `debootstrap --variant=minbase` of this host's Debian release (minutes;
    needs the Debian mirror). Downloaded packages and apt lists are left out, as in Docker's
    debian images."""
    if shutil.which("debootstrap") is None:
        raise RuntimeFailure("debootstrap is not installed; run `make setup`")
    if suite is None:
        suite = subprocess.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"],
                               capture_output=True, text=True).stdout.strip() or "bookworm"
    mirror = _debian_mirror()
    with tempfile.TemporaryDirectory(prefix="berth-debootstrap-", dir="/var/tmp") as tmp:
        tree = Path(tmp) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(tree), mirror],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeFailure(
                f"debootstrap {suite} from {mirror} failed: {result.stderr.strip()[-500:]}"
            )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (tree / leftover).glob("*"):
                if path.is_file() and path.name != "lock":
                    path.unlink()
        for cache in (tree / "var/cache/apt").glob("*.bin"):
            cache.unlink()
        config = {"Env": [DEFAULT_PATH], "Cmd": ["bash"]}
        return image_from_directories(
            store, [tree], config, tags=[tag],
            history=[f"berth bootstrap debian (debootstrap minbase {suite})"],
        )


def bootstrap(store: ImageStore, name: str, tag: str | None = None) -> Image:
    """Make the base image `name` (busybox or debian), tagged `tag` or NAME:latest."""
    if name == "busybox":
        return bootstrap_busybox(store, tag or "busybox:latest")
    if name == "debian":
        return bootstrap_debian(store, tag or "debian:latest")
    raise InvalidArgument(f"unknown bootstrap image {name!r}: choose busybox or debian")
