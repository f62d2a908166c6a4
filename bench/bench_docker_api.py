"""`docker run -d busybox sleep 3600` with the docker CLI: through Berth's Docker-compatible
endpoint (the whole stack: web server, control worker, one agent) vs a real dockerd started by
hand (bench/peers.py, PEERS.md) in the same run, rounds interleaved.

- cli_ms: the CLI's wall time (create + start answered). dockerd answers once the process
  runs; Berth once the container is placed and its start queued for the host's agent;
- running_ms (Berth): until `docker inspect` says running, the time comparable to dockerd's.

No goal is set by the issue beyond measuring; the ratios say how far the fleet's indirection
(HTTP → panel → Redis → agent → runc) costs against a local daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import ratio, summary

RUNS = int(os.environ.get("BENCH_RUNS", "10"))


def _berth_env(stack: Any, config: Path) -> dict[str, str]:
    from tests.e2e.stack import ADMIN, api

    token = stack.manage("berth_token", ADMIN).strip()
    team = api(stack, token, "POST", "teams/", {"name": "bench-team"})
    api(stack, token, "POST", "projects/", {"team": team["name"], "name": "bench"})
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps(
        {"HttpHeaders": {"Authorization": f"Bearer {token}"}}))
    return {**os.environ, "DOCKER_HOST": f"tcp://{stack.url.removeprefix('http://')}/docker",
            "DOCKER_CONFIG": str(config)}


def _berth_run(env: dict[str, str]) -> tuple[float, float, str]:
    """(CLI seconds, seconds until running, container id)."""
    began = time.perf_counter()
    made = subprocess.run(["docker", "run", "-d", "--label", "berth.project=bench", "busybox",
                           "sleep", "3600"], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    answered = time.perf_counter()
    while subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}", made],
                         env=env, capture_output=True, text=True).stdout.strip() != "running":
        if time.perf_counter() - began > 120:
            raise RuntimeError(f"container {made} did not run within 120 s")
        time.sleep(0.05)
    return answered - began, time.perf_counter() - began, made


def run() -> dict[str, Any]:
    from bench.peers import Dockerd
    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox
    from tests.e2e.stack import berth_stack

    root = Path("/var/tmp/berth-bench") / f"docker-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    bootstrap_busybox(Host(root).images)
    dockerd = Dockerd()
    try:
        with berth_stack(root) as stack:
            env = _berth_env(stack, root / "docker-config")
            _berth_run(env)  # warm: the first placement, the agent's first image mount
            dockerd.run()
            berth_cli, berth_running, peer = [], [], []
            made = []
            for _ in range(RUNS):
                cli, running, container = _berth_run(env)
                berth_cli.append(cli)
                berth_running.append(running)
                made.append(container)
                began = time.perf_counter()
                dockerd.run()
                peer.append(time.perf_counter() - began)
            subprocess.run(["docker", "rm", "-f", *made], env=env, capture_output=True)
    finally:
        dockerd.close()
        Host(root).purge()
        shutil.rmtree(root, ignore_errors=True)
    berth_cli_s, berth_running_s, peer_s = (summary(x) for x in (berth_cli, berth_running, peer))
    return {
        "benchmark": "docker_api_run", "runs": RUNS,
        "berth_cli": berth_cli_s, "berth_until_running": berth_running_s, "dockerd": peer_s,
        "cli_ratio_vs_dockerd": ratio(berth_cli_s["median_ms"], peer_s["median_ms"]),
        "running_ratio_vs_dockerd": ratio(berth_running_s["median_ms"], peer_s["median_ms"]),
        "peer": "dockerd (Debian docker.io) started by hand, no iptables, same busybox rootfs",
    }


if __name__ == "__main__":
    from bench.common import emit

    emit(run())
