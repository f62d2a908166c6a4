"""Throughput and density: start N idle busybox containers (`sleep 3600`) at concurrency 1 and 4
from one warm Python process, vs `podman run -d` of the same root filesystem at the same
concurrency, same run. While all N run, measure what each engine adds per container: its
monitor's (conmon's) PSS, the processes tied to each container, and the python processes on the
host before and after (Berth must add none per container).

Both engines use their default networking (a bridge network: a namespace, a veth pair and an
address per container; Berth also registers a DNS name) and conmon writing a k8s-file log.
`BENCH_NETWORK=none` runs both with a loopback-only namespace instead (`--network none`).

Goal (issue 2): Berth >= 2x podman's containers/s; no per-container Python process.
`BENCH_DENSITY_N` sets N (default 200)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import ratio, summary
from bench.peers import Podman
from runtime.containers.options import RunOptions
from runtime.host import Host
from runtime.images.bootstrap import bootstrap_busybox

DENSITY_N = int(os.environ.get("BENCH_DENSITY_N", "200"))
NETWORK = os.environ.get("BENCH_NETWORK", "default")  # "default" (bridge) or "none"
CONCURRENCY = (1, 4)
PODMAN_ARGS = ("--log-driver", "k8s-file", *(["--network", "none"] if NETWORK == "none" else []))
TREND_WINDOW = 20  # starts compared at the beginning and the end of a sequential phase
_CONTAINER_ID = re.compile(rb"[0-9a-f]{64}")


# -- /proc readers -------------------------------------------------------------------------
def _process_table() -> dict[int, tuple[str, int, bytes]]:
    """pid -> (comm, ppid, cmdline) for every process that can still be read."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue  # exited while we looked
        comm = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode(errors="replace")
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        table[int(entry.name)] = (comm, ppid, cmdline)
    return table


def _python_processes() -> int:
    """Python processes on the host (other work on a shared machine may move this count; the
    per-container census below is the exact measure)."""
    return sum(1 for comm, _, _ in _process_table().values() if comm.startswith("python"))


def _per_container_processes(container_ids: set[str]) -> tuple[Counter[str], list[int]]:
    """Processes that exist because of these containers: those naming a container id on their
    command line (conmon, any helper) and their children (the container's init). Returns the
    count per command name and the pids."""
    wanted = {i.encode() for i in container_ids}
    table = _process_table()
    tied = {pid for pid, (_, _, cmdline) in table.items()
            if any(m in wanted for m in _CONTAINER_ID.findall(cmdline))}
    children = {pid for pid, (_, ppid, _) in table.items() if ppid in tied}
    pids = sorted(tied | children)
    return Counter(table[pid][0] for pid in pids), pids


def _shared_processes(marker: bytes, exclude: set[int]) -> tuple[Counter[str], int]:
    """Processes the engine runs once for all containers (e.g. a DNS server), found by a path
    on their command line: count per name and their total PSS (kB)."""
    table = _process_table()
    pids = [pid for pid, (_, _, cmdline) in table.items()
            if marker in cmdline and pid not in exclude and pid != os.getpid()]
    return (Counter(table[pid][0] for pid in pids),
            sum(p for p in (_pss_kib(pid) for pid in pids) if p is not None))


def _pss_kib(pid: int) -> int | None:
    """Proportional set size of one process (kB), from /proc/PID/smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- phases --------------------------------------------------------------------------------
def _start_many(start_one: Callable[[], Any], n: int, concurrency: int,
                ) -> tuple[float, list[float], list[Any]]:
    """Call `start_one` n times on `concurrency` threads; wall seconds, each call's seconds
    (in submission order) and the results. The first failure is raised."""
    def timed_start(_: int) -> tuple[float, Any]:
        began = time.perf_counter()
        result = start_one()
        return time.perf_counter() - began, result

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(timed_start, range(n)))
    wall = time.perf_counter() - began
    return wall, [seconds for seconds, _ in outcomes], [result for _, result in outcomes]


def _density(conmon_pids: list[int], init_pids: list[int], container_ids: set[str],
             shared_marker: bytes, python_before: int) -> dict[str, Any]:
    """What the engine adds per running container, measured while all of them run: conmon,
    and any other process tied to a container that is not the container's own init."""
    n = len(container_ids)
    pss = [p for p in (_pss_kib(pid) for pid in conmon_pids) if p is not None]
    processes, pids = _per_container_processes(container_ids)
    for _ in range(40):  # `runc start` returns before the init has exec'd the command
        if "runc:[2:INIT]" not in processes:
            break
        time.sleep(0.05)
        processes, pids = _per_container_processes(container_ids)
    known = set(conmon_pids) | set(init_pids)
    other_pss = [p for p in (_pss_kib(pid) for pid in pids if pid not in known)
                 if p is not None]
    shared, shared_pss = _shared_processes(shared_marker, set(pids))
    return {
        "conmon_pss_kib": {
            "median": statistics.median(pss) if pss else None,
            "mean": round(statistics.fmean(pss), 1) if pss else None,
            "measured": len(pss),
        },
        "per_container_processes": {name: round(count / n, 3)
                                    for name, count in sorted(processes.items())},
        "other_engine_processes_pss_kib_per_container": round(sum(other_pss) / n, 1),
        "shared_processes": dict(sorted(shared.items())),
        "shared_processes_pss_kib_per_container": round(shared_pss / n, 1),
        "python_processes": {"before": python_before, "after": _python_processes()},
    }


def _berth_options() -> RunOptions:
    return RunOptions(image="busybox:latest", command=["sleep", "3600"],
                      networks=["none"] if NETWORK == "none" else [])


def _berth_phase(host: Host, n: int, concurrency: int) -> dict[str, Any]:
    python_before = _python_processes()
    wall, latencies, containers = _start_many(
        lambda: host.containers.run(_berth_options()), n, concurrency)
    running = {c.id for c in host.containers.list()}
    ids = {c.id for c in containers}
    if not ids <= running:
        raise RuntimeError(f"berth: {len(ids - running)} of {n} containers are not running")
    record = _phase_record(n, wall, latencies, concurrency)
    record.update(_density([c.state["ConmonPid"] for c in containers],
                           [c.state["Pid"] for c in containers], ids,
                           str(host.root).encode(), python_before))
    record["cleanup_s"] = round(_seconds(host.containers.purge), 2)
    return record


def _podman_phase(podman: Podman, n: int, concurrency: int) -> dict[str, Any]:
    python_before = _python_processes()
    wall, latencies, ids_list = _start_many(lambda: podman.run(*PODMAN_ARGS), n, concurrency)
    ids = set(ids_list)
    inspected = subprocess.run(
        ["podman", "inspect", "--format",
         "{{.Id}} {{.State.Running}} {{.State.ConmonPid}} {{.State.Pid}} {{.State.Status}} "
         "{{.State.ExitCode}} {{.State.Error}}", *ids_list],
        check=True, capture_output=True, text=True).stdout.split("\n")
    states = {fields[0]: fields[1:] for fields in (line.split() for line in inspected) if fields}
    not_running = [i for i in ids if states.get(i, ["false"])[0] != "true"]
    if not_running:
        raise RuntimeError(f"podman: {len(not_running)} of {n} containers are not running: "
                           f"{[(i[:12], *states.get(i, [])) for i in not_running]}")
    record = _phase_record(n, wall, latencies, concurrency)
    record.update(_density([int(states[i][1]) for i in ids_list],
                           [int(states[i][2]) for i in ids_list], ids,
                           b"/run/containers/networks", python_before))
    record["cleanup_s"] = round(_seconds(podman.remove_all), 2)
    return record


def _phase_record(n: int, wall: float, latencies: list[float], concurrency: int,
                  ) -> dict[str, Any]:
    record: dict[str, Any] = {
        "containers_per_s": round(n / wall, 2),
        "wall_s": round(wall, 2),
        "start_latency": summary(latencies),
    }
    if concurrency == 1 and n >= 2 * TREND_WINDOW:
        # A start that gets slower with every container already on the host shows up here.
        record["median_ms_first_vs_last"] = [
            round(statistics.median(latencies[:TREND_WINDOW]) * 1000, 2),
            round(statistics.median(latencies[-TREND_WINDOW:]) * 1000, 2),
        ]
    return record


def _seconds(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def run() -> dict:
    """Both engines at each concurrency, alternating so drift hits both alike."""
    root = Path(tempfile.mkdtemp(prefix="berth-bench-", dir="/var/tmp"))
    host = Host(root)
    podman: Podman | None = None
    try:
        podman = Podman()
        bootstrap_busybox(host.images)
        for _ in range(2):  # warm the process and both engines: imports, runtime probe, caches
            host.containers.run(_berth_options())
            podman.run(*PODMAN_ARGS)
        host.containers.purge()
        podman.remove_all()
        results: dict[str, Any] = {}
        for concurrency in CONCURRENCY:
            berth = _berth_phase(host, DENSITY_N, concurrency)
            peer = _podman_phase(podman, DENSITY_N, concurrency)
            results[str(concurrency)] = {
                "berth": berth, "podman": peer,
                "ratio_containers_per_s_vs_podman": ratio(berth["containers_per_s"],
                                                          peer["containers_per_s"]),
                "ratio_conmon_pss_vs_podman": ratio(berth["conmon_pss_kib"]["median"] or 0,
                                                    peer["conmon_pss_kib"]["median"] or 0),
            }
        no_python = all(
            not any(name.startswith("python") for name in
                    results[str(c)]["berth"]["per_container_processes"])
            for c in CONCURRENCY)
        return {
            "benchmark": "throughput",
            "containers": DENSITY_N,
            "network": NETWORK,
            "podman_args": list(PODMAN_ARGS),
            "concurrency": results,
            "no_per_container_python_process": no_python,
            "goal": "ratio_containers_per_s_vs_podman >= 2 at each concurrency; "
                    "no per-container python process",
            "goal_met": no_python and all(
                results[str(c)]["ratio_containers_per_s_vs_podman"] >= 2 for c in CONCURRENCY),
        }
    finally:
        try:
            host.purge()  # containers, volumes and networks (bridges, nft table, DNS server)
        finally:
            if podman is not None:
                podman.close()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
