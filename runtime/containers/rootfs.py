"""Overlayfs root filesystems: image layers read-only below, one upper directory per container.

mount(2) and umount2(2) are called through ctypes so the start path spawns no `mount` process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from runtime.errors import RuntimeFailure

MNT_DETACH = 2
_PAGE = os.sysconf("SC_PAGE_SIZE")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def overlay_options(lower_dirs: list[Path], upper: Path, work: Path) -> str:
    """The mount data string; `lower_dirs` lowest first (overlayfs wants the topmost first)."""
    for path in lower_dirs:
        if any(c in str(path) for c in ":,"):
            raise RuntimeFailure(f"layer path {path} contains ':' or ',' which overlayfs refuses")
    lower = ":".join(str(p) for p in reversed(lower_dirs))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def mount_overlay(lower_dirs: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount the overlay at `target` (upper, work and target must exist)."""
    if not lower_dirs:
        raise RuntimeFailure("an image without layers cannot be mounted: it has no root filesystem")
    data = overlay_options(lower_dirs, upper, work)
    if len(data) >= _PAGE:
        raise RuntimeFailure(
            f"the image has too many layers ({len(lower_dirs)}) for one overlay mount on this "
            "host; squash the image or use a shorter --root"
        )
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, data.encode()) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"mounting the overlay root filesystem at {target} failed: "
                             f"{os.strerror(err)}")


MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8


def mount_shm(target: Path, size: int) -> None:
    """A tmpfs of `size` bytes for a shareable /dev/shm (mode 1777, nosuid, nodev, noexec);
    `target` must exist. Mounted on the host so other containers can bind it."""
    if is_mounted(target):
        return
    data = f"mode=1777,size={size}".encode()
    if _libc.mount(b"shm", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   data) != 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"mounting the shareable /dev/shm at {target} failed: "
                             f"{os.strerror(err)}")


def is_mounted(target: Path) -> bool:
    """Whether `target` is a mount point (read from /proc/self/mountinfo)."""
    wanted = str(target)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == wanted:
                return True
    return False


def unmount(target: Path) -> None:
    """Unmount `target` if mounted; a busy mount is detached lazily rather than left behind."""
    encoded = str(target).encode()
    if _libc.umount2(encoded, 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
        return
    if err == errno.EBUSY and _libc.umount2(encoded, MNT_DETACH) == 0:
        return
    raise RuntimeFailure(f"unmounting {target} failed: {os.strerror(err)}")
