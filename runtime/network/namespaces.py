"""Named network namespaces, and running netlink work inside one, without helper processes.

pyroute2's `netns.create` forks a child to unshare, and each `NetNS(name)` session talks to a
helper process through a pipe: together about 10-20 ms per container. Namespaces belong to
threads, though, so the same work is done here in a short-lived thread of our own:

1. `create`: the thread unshares a new network namespace and bind-mounts
   /proc/thread-self/ns/net at /run/netns/NAME (what `ip netns add` does);
2. `run_inside`: the thread joins the namespace with setns(2), opens a plain `IPRoute` (its
   netlink socket belongs to the namespace the thread is in when the socket is created), does
   the work and ends.

The thread never switches back: it ends inside the namespace, so no code ever runs in the wrong
namespace by mistake, and the caller's thread is never touched.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from runtime.errors import RuntimeFailure

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, action: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{action}: {os.strerror(code)}")


def _in_thread(work: Callable[[], T]) -> T:
    """Run `work` in a new thread and return its result (or raise its exception)."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="berth-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _share_netns_dir() -> None:
    """/run/netns as `ip netns` keeps it: a mount point with shared propagation, so bind
    mounts made in it show up in other mount namespaces (runc's, for one)."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    target = NETNS_DIR.encode()
    if _libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None), f"bind {NETNS_DIR}")
    _check(_libc.mount(b"none", target, b"none", MS_SHARED | MS_REC, None),
           f"share {NETNS_DIR}")


def path_of(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def create(name: str, then: Callable[[], T] | None = None) -> T | None:
    """A new network namespace bound at /run/netns/NAME; `then()` runs inside it right away
    (in the creating thread) and its result is returned. On failure nothing stays."""
    path = path_of(name)
    _share_netns_dir()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise RuntimeFailure(f"create network namespace {name}: it exists already") from None

    def work() -> T | None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
               f"bind the namespace at {path}")
        return then() if then is not None else None

    try:
        return _in_thread(work)
    except BaseException as exc:
        remove(name)
        if isinstance(exc, OSError):
            raise RuntimeFailure(f"create network namespace {name}: {exc}") from None
        raise


def remove(name: str) -> None:
    """Unmount and delete /run/netns/NAME (the namespace goes once nothing uses it)."""
    path = path_of(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (
            errno.EINVAL, errno.ENOENT):
        code = ctypes.get_errno()
        raise RuntimeFailure(f"unmount network namespace {path}: {os.strerror(code)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def run_inside(name: str, work: Callable[[], T]) -> T:
    """`work()` in a thread that has joined namespace NAME (create netlink sockets inside
    `work`, so they belong to the namespace)."""
    path = path_of(name)

    def joined() -> T:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RuntimeFailure(f"network namespace {name} does not exist") from None
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"join network namespace {name}")
        finally:
            os.close(fd)
        return work()

    return _in_thread(joined)
