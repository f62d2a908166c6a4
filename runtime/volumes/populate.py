"""Seeding an empty volume with what the image has at the mount path, as Docker does.

When a container mounts a volume that is empty at a path where its image has files (a database
image's /var/lib/…, an app's default config), Docker copies the image's content there, with the
directory's owner and mode, so the container finds what it expects; an image that only declares
an empty directory owned by its user still gets that owner on the volume. A volume that holds
anything is never touched (the user's data wins), and `-v NAME:/path:nocopy` turns the copy off.

The source is the container's root filesystem, mounted (image layers merged by overlayfs, so
whiteouts and opaque directories are already applied). The mount path is resolved inside that
root the way the container will see it: symlinks are followed, but never out of the root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from runtime.errors import RuntimeFailure

MAX_SYMLINKS = 40


def resolve_in_root(root: Path, path: str) -> Path | None:
    """`path` as the container sees it inside `root`, symlinks followed and scoped to `root`
    (an absolute or `..` target never climbs above it); None if it does not exist or loops."""
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        if not os.path.lexists(candidate):
            return None
        resolved.append(part)
    return root.joinpath(*resolved)


def copy_image_content(rootfs: Path, destination: str, volume_data: Path) -> bool:
    """Copy the image's directory at `destination` (inside the mounted `rootfs`) into the empty
    `volume_data`, with owners, modes, times, symlinks and hard links; returns whether it
    copied. A volume that is not empty, or a path that is missing or not a directory in the
    image, is left alone. A failed copy leaves the volume empty again."""
    if any(os.scandir(volume_data)):
        return False
    source = resolve_in_root(rootfs, destination)
    if source is None or source.is_symlink() or not source.is_dir():
        return False
    result = subprocess.run(["cp", "-a", "--", f"{source}/.", str(volume_data)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        for entry in os.scandir(volume_data):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        raise RuntimeFailure(f"copying the image's {destination} into its volume failed: "
                             f"{result.stderr.strip() or 'cp exited ' + str(result.returncode)}")
    return True
