"""A volume backed up to a download and restored from an upload through the browser, byte-exact,
with the bytes streamed host → panel → browser and back over HTTP (never through Redis)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.stack import HOST_NAME, Stack, sign_in

pytestmark = pytest.mark.root

# more than any buffer on the way, so only streaming gets it through; BERTH_E2E_TRANSFER_MB=2048
# runs the 2 GB case (minutes: not part of `make test`)
SIZE = int(os.environ.get("BERTH_E2E_TRANSFER_MB", "48")) * 1024 * 1024
WEB_RSS_LIMIT = 200 * 1024 * 1024


class PeakRss:
    """The peak resident memory of process `pid`, sampled every 50 ms in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except FileNotFoundError:  # the web server is gone: the test says why it failed
                return
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _mountpoint(stack: Stack, name: str) -> Path:
    return Path(json.loads(stack.runtime("volume", "inspect", name))[0]["Mountpoint"])


def _volume_on_host(stack: Stack, name: str) -> Path:
    """Create volume `name` on the test host through the panel; its directory once the host
    made it."""
    stack.manage("shell", "-c", (
        "from panel.audit.services import Actor\n"
        "from panel.workloads.services import create_volume\n"
        f"create_volume(Actor.system('e2e'), {name!r}, host_name={HOST_NAME!r})\n"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return _mountpoint(stack, name)
        except subprocess.CalledProcessError:
            time.sleep(0.2)
    raise AssertionError(f"volume {name} never reached the host")


def _operation_done(page: Any) -> None:
    page.wait_for_function("() => ['succeeded', 'failed'].includes(document.querySelector("
                           "'#operation [data-field=status]').textContent.trim())",
                           timeout=120_000)
    status = page.locator("#operation [data-field=status]").inner_text().strip()
    assert status == "succeeded", page.locator("#operation").inner_text()


def test_volume_backs_up_to_a_download_and_restores_from_an_upload_byte_exact(
        stack: Stack, browser: Any, tmp_path: Path) -> None:
    data = _volume_on_host(stack, "e2edata")
    (data / "big.bin").write_bytes(os.urandom(SIZE))
    (data / "notes").mkdir()
    (data / "notes" / "a.txt").write_text("the data is what you back up\n")
    original = _tree_digest(data)
    client = redis.Redis.from_url(stack.redis_url)
    peak_before = int(client.info("memory")["used_memory"])

    page = browser.new_page(accept_downloads=True)
    sign_in(page, stack.url)
    web = PeakRss(stack.web_pid).start()
    started = time.monotonic()
    page.goto(f"{stack.url}/volumes/")
    row = page.locator("tr", has_text="e2edata")
    row.get_by_role("button", name="Back up").click()
    page.wait_for_url(re.compile(r"/operations/"))
    _operation_done(page)
    page.locator("#download-link").wait_for(state="visible", timeout=30_000)
    announced = page.locator("#backup-sha256").inner_text().strip()
    with page.expect_download(timeout=120_000) as download_info:
        page.get_by_role("link", name="Download the backup").click()
    archive = tmp_path / "e2edata.tar.zst"
    download_info.value.save_as(archive)
    assert _sha256(archive) == announced  # checksummed end to end
    backed_up = time.monotonic()

    (data / "big.bin").write_bytes(b"damaged")
    (data / "notes" / "a.txt").unlink()
    page.goto(f"{stack.url}/volumes/")
    row = page.locator("tr", has_text="e2edata")
    row.get_by_label("Backup archive for e2edata").set_input_files(str(archive))
    row.get_by_role("button", name="Restore").click()
    page.wait_for_url(re.compile(r"/operations/"), timeout=120_000)
    _operation_done(page)
    restored = time.monotonic()
    web.stop()
    assert _tree_digest(_mountpoint(stack, "e2edata")) == original
    # Redis carried requests, not the data either way; the web server streamed it
    redis_growth = int(client.info("memory")["used_memory"]) - peak_before
    sys.stderr.write(f"{SIZE >> 20} MiB through the browser: backup {backed_up - started:.1f} s, "
                     f"restore {restored - backed_up:.1f} s, web RSS peak {web.peak >> 20} MiB, "
                     f"Redis growth {redis_growth / 2**20:.2f} MiB\n")
    assert redis_growth < 8 * 1024 * 1024
    assert web.peak < WEB_RSS_LIMIT, f"the web server held {web.peak >> 20} MiB"
    page.close()


def test_a_schedule_made_on_the_page_backs_up_to_a_directory_and_its_drill_proves_it(
        stack: Stack, browser: Any, tmp_path: Path) -> None:
    data = _volume_on_host(stack, "e2esched")
    (data / "db.dump").write_bytes(os.urandom(1 << 20))
    backups = tmp_path / "backups"
    page = browser.new_page()
    sign_in(page, stack.url)
    page.goto(f"{stack.url}/volumes/")
    page.get_by_role("link", name="Scheduled backups of e2esched").click()
    deadline = time.monotonic() + 60  # the form appears once the host has reported the volume
    while page.get_by_label("Every (hours)").count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    page.get_by_label("Every (hours)").fill("24")
    page.get_by_label("Path").fill(str(backups))
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("backups of e2esched scheduled").wait_for()
    schedules = page.url
    page.get_by_role("button", name="Back up now").click()
    page.wait_for_url(re.compile(r"/operations/"))
    _operation_done(page)
    assert [p.name for p in backups.rglob("*.tar.zst")], "the backup reached the directory"
    page.goto(schedules)
    page.get_by_role("button", name="Drill").click()
    page.wait_for_url(re.compile(r"/operations/"))
    _operation_done(page)  # restored into a scratch volume and compared, byte-exact
    page.goto(schedules)
    row = page.get_by_role("table", name="Backup schedules").locator("tbody tr")
    assert row.locator('[data-field="status"]').all_inner_texts() == ["succeeded", "succeeded"]
    page.close()


def test_an_unannounced_or_finished_transfer_token_is_refused_by_the_host(stack: Stack) -> None:
    import requests

    url = redis.Redis.from_url(stack.redis_url).get(f"berth:transfer:url:{HOST_NAME}")
    assert url, "the agent publishes its transfer address"
    base = url.decode()
    assert requests.get(f"{base}/t/{'0' * 32}", timeout=10).status_code == 404
    assert requests.put(f"{base}/t/{'0' * 32}?offset=0", data=b"x", timeout=10).status_code \
        == 404
    assert requests.get(f"{base}/t/../../etc/passwd", timeout=10).status_code == 404
