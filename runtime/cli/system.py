"""`berth-runtime` verbs about the host itself: `info`, and `supervise` (the background
supervisor of restart policies and health checks)."""

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
    supervise.set_defaults(func=_supervise)


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

    return serve(Path(args.root), args.idle_exit)
