"""Compose front end vs docker-compose 1.29 (the peer) on the project's own corpus of
real-shaped files (tests/panel/stacks/compose_cases/*.yml and the directories under
compose_dirs/, each a compose file with its env files, secrets and configs): how many each
accepts, whether both give every service the same image and environment, and the time to
resolve one file (Berth in-process; docker-compose's `config`, a process per file, as a user
runs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.common import ratio, summary, timed

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "tests/panel/stacks/compose_cases"
DIRS = REPO / "tests/panel/stacks/compose_dirs"
ENVIRONMENT = {"HTTP_PORT": "8081", "REPLICAS": "2", "HOST": "api.example.com",
               "FROM_STACK": "from-the-stack"}
RUNS = 5


def _setup_django(state: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
    os.environ.setdefault("BERTH_STATE_DIR", str(state))
    import django

    django.setup()


def _corpus(scratch: Path) -> list[tuple[str, Path, dict[str, str]]]:
    """(name, compose file path, the files next to it) for every case."""
    cases = [(p.name, p, {}) for p in sorted(CASES.glob("*.yml"))]
    for directory in sorted(p for p in DIRS.iterdir() if p.is_dir()):
        copy = scratch / directory.name
        shutil.copytree(directory, copy)
        files = {str(p.relative_to(copy)): p.read_text() for p in sorted(copy.rglob("*"))
                 if p.is_file() and p.name != "compose.yml"}
        cases.append((directory.name, copy / "compose.yml", files))
    return cases


def _berth(path: Path, files: dict[str, str]) -> Any:
    from panel.stacks.compose import ComposeError, parse_compose

    try:
        return parse_compose(path.read_text(), stack_name="shop", environment=ENVIRONMENT,
                             allow_bind_mounts=True, files=files)
    except ComposeError:
        return None


def _peer(executable: str, path: Path) -> dict[str, Any] | None:
    result = subprocess.run([executable, "-f", str(path), "-p", "shop", "config"],
                            capture_output=True, text=True, timeout=60, cwd=path.parent,
                            env={"PATH": os.environ["PATH"], **ENVIRONMENT})
    return yaml.safe_load(result.stdout) if result.returncode == 0 else None


def _tagged(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


def _same_services(ours: Any, theirs: dict[str, Any]) -> bool:
    """Same image (a missing tag is :latest) and environment per service; docker-compose's
    `config` prints a literal $ escaped as $$."""
    for name, service in ours.services.items():
        peer = (theirs.get("services") or {}).get(name)
        if peer is None:
            return False
        env = {k: "" if v is None else str(v).replace("$$", "$") for k, v in
               (peer.get("environment") or {}).items()}
        if service.container["env"] != env or \
                _tagged(service.container["image"]) != _tagged(str(peer.get("image"))):
            return False
    return True


def run() -> dict[str, Any]:
    executable = shutil.which("docker-compose")
    if not executable:
        raise RuntimeError("docker-compose is missing: scripts/setup.sh installs it")
    with tempfile.TemporaryDirectory(prefix="berth-bench-compose-") as scratch:
        _setup_django(Path(scratch) / "state")
        corpus = _corpus(Path(scratch))
        accepted = {"berth": 0, "docker_compose": 0, "both_agree": 0}
        berth_times: list[float] = []
        peer_times: list[float] = []
        refused_by_peer = []
        for name, path, files in corpus:
            ours = _berth(path, files)
            theirs = _peer(executable, path)
            accepted["berth"] += ours is not None
            accepted["docker_compose"] += theirs is not None
            if theirs is None:
                refused_by_peer.append(name)
            if ours is not None and theirs is not None and _same_services(ours, theirs):
                accepted["both_agree"] += 1
            for _ in range(RUNS):
                berth_times.append(timed(lambda p=path, f=files: _berth(p, f)))
            peer_times.append(timed(lambda p=path: _peer(executable, p)))
        ours_summary, peer_summary = summary(berth_times), summary(peer_times)
        return {
            "benchmark": "compose_front_end",
            "files": len(corpus),
            "accepted": accepted,
            "refused_by_docker_compose_1_29": refused_by_peer,
            "berth_resolve": ours_summary,
            "docker_compose_config": peer_summary,
            "ratio_resolve_vs_docker_compose": ratio(ours_summary["median_ms"],
                                                     peer_summary["median_ms"]),
        }
