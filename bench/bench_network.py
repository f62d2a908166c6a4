"""Network setup cost, start-with-networking and scale, vs podman in the same run (issue 3).

1. setup: namespace + veth + address + route + DNS name + one published port for one container,
   from a warm process (NetworkManager.setup), vs podman's network setup for the same container:
   median `podman run -d -p 80` minus median `podman run -d --network none`. Goal <= 0.5x.
2. start_with_port: `run` of busybox on the default network with one published port, until the
   port answers on 127.0.0.1, vs `podman run -d -p` until its port answers. Goal <= 0.4x.
3. scale: BENCH_SCALE (250) sandboxes on one network; the time for the last one to get its
   address and resolve the first by name vs the same for the first (cost must not grow).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import ratio, summary, timed
from bench.peers import Podman
from runtime.containers.options import RunOptions
from runtime.host import Host
from runtime.images.bootstrap import bootstrap_busybox
from runtime.network import EndpointRequest, NetworkManager, PortSpec

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
SCALE = int(os.environ.get("BENCH_SCALE", "250"))
SERVE = "while true; do echo pong | nc -l -p 8000; done"


def _owner(seed: str) -> str:
    """A 64-hex id like a container's (namespaces are named after its first 12 digits)."""
    return hashlib.sha256(seed.encode()).hexdigest()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            try:
                sock.connect(("127.0.0.1", port))
                if sock.recv(16):
                    return
            except OSError:
                pass
        time.sleep(0.001)
    raise RuntimeError(f"port {port} did not answer within {timeout}s")


def _setup_samples(networks: NetworkManager, runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        owner = _owner(f"setup{i}-{time.perf_counter()}")
        samples.append(timed(lambda owner=owner: networks.setup(
            owner, f"bench{owner[-6:]}", [EndpointRequest("bench")], [PortSpec(80)])))
        networks.teardown(owner)
        networks.forget(owner)
    return samples


def _podman_port(podman: Podman, container_id: str) -> int:
    out = subprocess.run(["podman", "port", container_id, "8000/tcp"], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


def _berth_start_sample(host: Host) -> float:
    start = time.perf_counter()
    container = host.containers.run(RunOptions(image="busybox:latest", command=["sh", "-c", SERVE],
                                               publish=["8000"]))
    port = int(container.network_settings["Ports"]["8000/tcp"][0]["HostPort"])
    _wait_port(port)
    return time.perf_counter() - start


def _podman_start_sample(podman: Podman) -> float:
    start = time.perf_counter()
    container_id = podman.run("-p", "8000", command=("sh", "-c", SERVE))
    _wait_port(_podman_port(podman, container_id))
    return time.perf_counter() - start


def _scale(networks: NetworkManager) -> dict:
    """Sandbox + name lookup of the first sandbox, for the 1st and the SCALE-th sandbox."""
    from pyroute2 import NetNS  # noqa: F401  (imported once, outside the timings)

    gateway = str(networks.get("scale").gateway)

    def join_and_resolve(index: int) -> float:
        owner = _owner(f"scale{index}")
        start = time.perf_counter()
        sandbox = networks.setup(owner, f"box{index}", [EndpointRequest("scale")], [])
        result = subprocess.run(["nsenter", f"--net={sandbox['Path']}", "busybox", "nslookup",
                                 "box0", gateway], capture_output=True, text=True)
        if "Address" not in result.stdout.split("Name:")[-1]:
            raise RuntimeError(f"box{index} could not resolve box0: {result.stdout}")
        return time.perf_counter() - start

    first = [join_and_resolve(0)]
    for index in range(1, SCALE - 5):
        networks.setup(_owner(f"scale{index}"), f"box{index}", [EndpointRequest("scale")], [])
    last = [join_and_resolve(index) for index in range(SCALE - 5, SCALE)]
    return {"containers": SCALE, "first_ms": round(first[0] * 1000, 2),
            "last_median_ms": round(statistics.median(last) * 1000, 2),
            "growth": ratio(statistics.median(last), first[0])}


def run() -> dict:
    root = Path(tempfile.mkdtemp(prefix="berth-bench-net-", dir="/var/tmp"))
    host = Host(root)
    networks = host.networks.manager
    podman = Podman()
    try:
        bootstrap_busybox(host.images)
        networks.create("bench")
        _setup_samples(networks, 2)  # warm: imports, the DNS server, the bridge
        berth_setup: list[float] = []
        with_port: list[float] = []
        no_network: list[float] = []
        for _ in range(max(1, RUNS // 5)):
            berth_setup += _setup_samples(networks, 5)
            with_port += [timed(lambda: podman.run("-p", "80")) for _ in range(5)]
            no_network += [timed(lambda: podman.run("--network", "none")) for _ in range(5)]
            podman.remove_all()
        podman_cost = statistics.median(with_port) - statistics.median(no_network)
        setup = {
            "berth": summary(berth_setup),
            "podman_run_p_ms": summary(with_port)["median_ms"],
            "podman_run_network_none_ms": summary(no_network)["median_ms"],
            "podman_network_cost_ms": round(podman_cost * 1000, 2),
            "ratio_vs_podman": ratio(statistics.median(berth_setup), podman_cost),
        }
        _berth_start_sample(host)  # warm
        host.containers.purge()
        berth_start: list[float] = []
        podman_start: list[float] = []
        for _ in range(max(1, RUNS // 5)):
            berth_start += [_berth_start_sample(host) for _ in range(5)]
            podman_start += [_podman_start_sample(podman) for _ in range(5)]
            host.containers.purge()
            podman.remove_all()
        start = {"berth": summary(berth_start), "podman": summary(podman_start),
                 "ratio_vs_podman": ratio(statistics.median(berth_start),
                                          statistics.median(podman_start))}
        networks.create("scale", subnet=None)
        scale = _scale(networks)
        return {
            "benchmark": "network",
            "setup": setup, "start_with_port": start, "scale": scale,
            "goal": "setup ratio <= 0.5, start_with_port ratio <= 0.4, scale growth ~1",
            "goal_met": setup["ratio_vs_podman"] <= 0.5 and start["ratio_vs_podman"] <= 0.4,
        }
    finally:
        try:
            host.purge()
        finally:
            podman.close()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
