"""Volume backup and restore of a big volume through the panel, as a browser does it (HTTP to
the panel, streamed to and from the host's agent), against plain `tar` of the same directory in
the same run; with Redis's memory and the web server's RSS sampled while the bytes flow.

- backup: POST the backup, wait for the operation, GET the download to a file (sha256 checked);
  peer: `tar -C DIR -cf - . | zstd -1 -T0 > FILE` (what the backup writes: a zstd tar);
- restore: POST the archive as the upload form does, wait for the operation; peer: `zstd -dc
  FILE | tar -C EMPTYDIR -xf -`.

BERTH_BENCH_TRANSFER_MIB sets the volume size (default 2048: 2 GiB, half random and half
zeros, so compression has something to do as in real data)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import ratio

MIB = int(os.environ.get("BERTH_BENCH_TRANSFER_MIB", "2048"))


def _fill(directory: Path) -> None:
    random_part = os.urandom(1 << 20)
    for index in range(MIB):
        with open(directory / f"part-{index // 64:03d}.bin", "ab") as out:
            out.write(random_part if index % 2 else bytes(1 << 20))


class _Sampler:
    """Peak RSS of the web server and peak Redis used_memory while a transfer runs."""

    def __init__(self, web_pid: int, redis_client: Any):
        self.web_pid, self.redis = web_pid, redis_client
        self.rss_peak = self.redis_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = 0
        for pid in [self.web_pid, *_children(self.web_pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, self._rss())
            self.redis_peak = max(self.redis_peak, int(self.redis.info("memory")["used_memory"]))
            self._stop.wait(0.2)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _session(url: str) -> Any:
    from tests.e2e.stack import ADMIN, PASSWORD

    session = _loopback_session()
    session.get(f"{url}/accounts/login/", timeout=30)
    answer = session.post(f"{url}/accounts/login/", timeout=30, headers={"Referer": url},
                          data={"username": ADMIN, "password": PASSWORD,
                                "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    answer.raise_for_status()
    return session


def _loopback_session() -> Any:
    import requests

    class LoopbackSession(requests.Session):
        """The panel marks its cookies Secure; browsers still send them to http://127.0.0.1
        (a secure context), requests would not: this loopback session sends them."""

        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            for cookie in self.cookies:
                cookie.secure = False
            return super().request(*args, **kwargs)

    return LoopbackSession()


def _wait_operation(session: Any, url: str, operation_url: str) -> str:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        page = session.get(url + operation_url, timeout=30).text
        status = re.search(r'data-field="status">(\w+)<', page)
        if status and status.group(1) in ("succeeded", "failed"):
            if status.group(1) == "failed":
                raise RuntimeError(f"operation failed: {page[:2000]}")
            return page
        time.sleep(0.2)
    raise TimeoutError("operation did not finish")


def _through_panel(stack: Any, data: Path, scratch: Path) -> dict[str, Any]:
    import redis

    session = _session(stack.url)
    volume_id = re.search(r'/volumes/(\d+)/backup/', session.get(f"{stack.url}/volumes/",
                                                                 timeout=30).text).group(1)
    csrf = {"csrfmiddlewaretoken": session.cookies["csrftoken"]}
    headers = {"Referer": stack.url}
    web_pid = int(subprocess.run(["pgrep", "-f", "uvicorn panel.asgi"], capture_output=True,
                                 text=True).stdout.split()[0])
    client = redis.Redis.from_url(stack.redis_url)
    redis_before = int(client.info("memory")["used_memory"])
    archive = scratch / "backup.tar.zst"
    with _Sampler(web_pid, client) as backup_sample:
        started = time.perf_counter()
        answer = session.post(f"{stack.url}/volumes/{volume_id}/backup/", data=csrf,
                              headers=headers, timeout=60, allow_redirects=False)
        if "Location" not in answer.headers:
            reason = re.findall(r"<p>(.*?)</p>", answer.text)[:3]
            raise RuntimeError(f"backup refused: {answer.status_code} {reason}")
        operation_url = answer.headers["Location"]
        page = _wait_operation(session, stack.url, operation_url)
        announced = re.search(r'id="backup-sha256">([0-9a-f]{64})<', page).group(1)
        digest = hashlib.sha256()
        with session.get(f"{stack.url}{operation_url}download/", stream=True,
                         timeout=3600) as download, open(archive, "wb") as out:
            for chunk in download.iter_content(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        backup_seconds = time.perf_counter() - started
    assert digest.hexdigest() == announced, "the download differs from the backup"
    shutil.rmtree(data)
    data.mkdir()
    with _Sampler(web_pid, client) as restore_sample:
        started = time.perf_counter()
        with open(archive, "rb") as upload:
            answer = session.post(f"{stack.url}/volumes/{volume_id}/restore/", data=csrf,
                                  files={"archive": ("backup.tar.zst", upload)},
                                  headers=headers, timeout=3600, allow_redirects=False)
        _wait_operation(session, stack.url, answer.headers["Location"])
        restore_seconds = time.perf_counter() - started
    return {"backup_s": round(backup_seconds, 2), "restore_s": round(restore_seconds, 2),
            "archive_bytes": archive.stat().st_size,
            "web_rss_peak_mib": round(max(backup_sample.rss_peak,
                                          restore_sample.rss_peak) / 2**20, 1),
            "redis_growth_peak_mib": round((max(backup_sample.redis_peak,
                                                restore_sample.redis_peak)
                                            - redis_before) / 2**20, 2)}


def _with_tar(data: Path, scratch: Path) -> dict[str, Any]:
    archive = scratch / "peer.tar.zst"
    started = time.perf_counter()
    subprocess.run(f"tar -C {data} -cf - . | zstd -q -1 -T0 > {archive}", shell=True,
                   check=True)
    backup = time.perf_counter() - started
    target = scratch / "peer-restore"
    target.mkdir()
    started = time.perf_counter()
    subprocess.run(f"zstd -q -dc {archive} | tar -C {target} -xf -", shell=True, check=True)
    restore = time.perf_counter() - started
    shutil.rmtree(target)
    archive.unlink()
    return {"backup_s": round(backup, 2), "restore_s": round(restore, 2)}


def run() -> dict[str, Any]:
    import json

    from runtime.host import Host
    from runtime.images.bootstrap import bootstrap_busybox
    from tests.e2e.stack import HOST_NAME, berth_stack

    root = Path("/var/tmp/berth-bench") / f"transfers-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    bootstrap_busybox(Host(root).images)
    scratch = Path(tempfile.mkdtemp(prefix="berth-bench-transfers-", dir="/var/tmp"))
    try:
        with berth_stack(root) as stack:
            stack.manage("shell", "-c", (
                "from panel.audit.services import Actor\n"
                "from panel.workloads.services import create_volume\n"
                f"create_volume(Actor.system('bench'), 'benchdata', host_name={HOST_NAME!r})\n"))
            deadline = time.monotonic() + 60
            while True:
                try:
                    data = Path(json.loads(stack.runtime("volume", "inspect", "benchdata"))[0][
                        "Mountpoint"])
                    break
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            _fill(data)
            peer = _with_tar(data, scratch)
            ours = _through_panel(stack, data, scratch)
    finally:
        Host(root).purge()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return {"benchmark": "volume_transfers", "volume_mib": MIB, "berth": ours, "tar_zstd": peer,
            "backup_ratio_vs_tar": ratio(ours["backup_s"], peer["backup_s"]),
            "restore_ratio_vs_tar": ratio(ours["restore_s"], peer["restore_s"]),
            "backup_mib_per_s": round(MIB / ours["backup_s"], 1),
            "restore_mib_per_s": round(MIB / ours["restore_s"], 1)}
