"""The agent's transfer endpoint on loopback: only announced tokens, ranges for a broken
download, offsets for a broken upload, and a file whose checksum differs is refused whole."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runtime.agent.transfer_server import TransferServer, new_token


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TransferServer]:
    running = TransferServer(tmp_path / "spool", "127.0.0.1:0")
    running.start()
    yield running
    running.stop()


def test_a_download_serves_the_whole_file_and_any_range_with_its_checksum(server, tmp_path):
    body = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "backup.tar.zst").write_bytes(body)
    token = new_token()
    digest = server.offer(token, tmp_path / "backup.tar.zst", keep=60)
    url = f"{server.url}/t/{token}"
    whole = requests.get(url, timeout=10)
    assert whole.content == body and whole.headers["X-Berth-Sha256"] == digest
    assert digest == hashlib.sha256(body).hexdigest()
    part = requests.get(url, headers={"Range": "bytes=1000-"}, timeout=10)
    assert part.status_code == 206 and part.content == body[1000:]
    assert part.headers["Content-Range"] == f"bytes 1000-{len(body) - 1}/{len(body)}"
    assert requests.get(url, headers={"Range": "bytes=-10"}, timeout=10).content == body[-10:]
    assert requests.get(url, headers={"Range": f"bytes={len(body)}-"},
                        timeout=10).status_code == 416


def test_an_upload_resumes_at_the_received_offset_and_completes_once_checked(server):
    body = os.urandom(2 * 1024 * 1024)
    token, arrived = new_token(), []
    done = threading.Event()
    server.expect(token, keep=60, on_complete=lambda path: (arrived.append(path.read_bytes()),
                                                           done.set()))
    url = f"{server.url}/t/{token}"
    assert requests.put(f"{url}?offset=0", data=body[:1000], timeout=10).status_code == 200
    assert requests.head(url, timeout=10).headers["X-Berth-Received"] == "1000"
    stale = requests.put(f"{url}?offset=0", data=body[:1000], timeout=10)
    assert stale.status_code == 409 and stale.headers["X-Berth-Received"] == "1000"
    last = requests.put(f"{url}?offset=1000", data=body[1000:], timeout=10,
                        headers={"X-Berth-Sha256": hashlib.sha256(body).hexdigest()})
    assert last.status_code == 200
    assert done.wait(10) and arrived == [body]
    assert requests.head(url, timeout=10).status_code == 404  # finished: the token is gone


def test_an_upload_whose_checksum_differs_is_refused_and_nothing_runs(server):
    token, ran = new_token(), []
    server.expect(token, keep=60, on_complete=ran.append)
    answer = requests.put(f"{server.url}/t/{token}?offset=0", data=b"tampered", timeout=10,
                          headers={"X-Berth-Sha256": "0" * 64})
    assert answer.status_code == 422 and "upload it again" in answer.text
    assert ran == [] and server.get(token) is None


def test_tokens_never_announced_or_malformed_are_404(server):
    for path in (f"/t/{new_token()}", "/t/../../etc/passwd", "/t/ABC", "/"):
        assert requests.get(server.url + path, timeout=10).status_code == 404
    assert requests.put(f"{server.url}/t/{new_token()}?offset=0", data=b"x",
                        timeout=10).status_code == 404
