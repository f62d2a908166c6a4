"""Start: create and start busybox from a warm Python process until its process runs, vs
`podman run -d` of the same root filesystem and the bare `runc run -d` floor, same run.

Goal (issue 2): Berth <= 0.4x podman and <= 1.5x the floor."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.common import summary, timed
from bench.peers import Podman, RuncFloor
from runtime.containers.options import RunOptions
from runtime.host import Host
from runtime.images.bootstrap import bootstrap_busybox

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def _berth_samples(host: Host, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        options = RunOptions(image="busybox:latest", command=["sleep", "3600"])
        samples.append(timed(lambda options=options: host.containers.run(options)))
    return samples


def run() -> dict:
    root = Path(tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp"))
    host = Host(root)
    floor = RuncFloor()
    podman = Podman()
    try:
        bootstrap_busybox(host.images)
        _berth_samples(host, 2)  # warm the process: imports, first mounts
        host.containers.purge()
        berth, runc, pod = [], [], []
        # Interleave the tools in rounds so drift on a shared machine hits all of them alike.
        for _ in range(RUNS // 5):
            berth += _berth_samples(host, 5)
            runc += [timed(floor.start) for _ in range(5)]
            pod += [timed(podman.run) for _ in range(5)]
            host.containers.purge()
            floor.remove_all()
            podman.remove_all()
        b, r, p = summary(berth), summary(runc), summary(pod)
        return {
            "benchmark": "start",
            "berth": b, "runc_floor": r, "podman": p,
            "ratio_vs_podman": round(b["median_ms"] / p["median_ms"], 3),
            "ratio_vs_floor": round(b["median_ms"] / r["median_ms"], 3),
            "goal": "ratio_vs_podman <= 0.4 and ratio_vs_floor <= 1.5",
        }
    finally:
        host.purge()  # containers, volumes and networks (bridges, nft table, DNS server)
        floor.close()
        podman.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
