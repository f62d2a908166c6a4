"""`berth-runtime` verbs about the host itself: `info`, `supervise` (the background supervisor of
restart policies and health checks), `reconcile` (after a reboot or a rules flush) and `cleanup`
(conmon's exit command for `--rm` containers)."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

from runtime.cli.output import print_json


def register(verbs: argparse._SubParsersAction) -> None:
    info = verbs.add_parser("info", help="show the OCI runtime in use and what this root holds")
    info.set_defaults(func=_info)
    supervise = verbs.add_parser(
        "supervise", help="run restart policies and health checks (started automatically)")
    supervise.add_argument("--idle-exit", type=float, default=None, metavar="SECONDS",
                           help="exit after this long with nothing to supervise")
    supervise.add_argument("--boot", action="store_true",
                           help="first start what the restart policies want after a host or "
                           "daemon restart (always; unless-stopped unless stopped by hand)")
    supervise.set_defaults(func=_supervise)
    reconcile = verbs.add_parser(
        "reconcile", help="re-create bridges, reinstall packet-filter rules, restart name "
        "resolution and finalise containers that exited unobserved (after a reboot or a flush)")
    reconcile.set_defaults(func=_reconcile)
    cleanup = verbs.add_parser("cleanup", help="finalise an exited container (run by conmon; "
                               "removes --rm containers)")
    cleanup.add_argument("container", metavar="CONTAINER")
    cleanup.set_defaults(func=_cleanup)


def _info(args: argparse.Namespace) -> int:
    from runtime.host import Host

    host = Host(args.root)
    runtime = host.containers.default_runtime()
    containers = host.containers.list(all=True)
    data = {
        "Root": str(Path(args.root)),
        "OCIRuntime": os.path.basename(runtime),
        "OCIRuntimePath": runtime,
        "Containers": len(containers),
        "ContainersRunning": sum(1 for c in containers if c.running),
        "Images": len(host.images.list()),
        "Volumes": len(host.volumes.list()),
        "Kernel": platform.release(),
        "CgroupLayout": _cgroup_layout(),
    }
    if args.json:
        print_json(data)
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0


def _cgroup_layout() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2 (unified)"
    if os.path.isdir("/sys/fs/cgroup/unified"):
        return "v1 with a v2 mount (hybrid)"
    return "v1"


def _supervise(args: argparse.Namespace) -> int:
    from runtime.supervisor import serve

    return serve(Path(args.root), args.idle_exit, boot=args.boot)


def _reconcile(args: argparse.Namespace) -> int:
    from runtime.host import Host

    Host(args.root).reconcile()
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    from runtime.errors import NotFound
    from runtime.host import Host

    try:
        Host(args.root).containers.on_exit(args.container)
    except NotFound:
        pass  # removed meanwhile (rm -f, or an attached client's --rm): nothing left to do
    return 0
