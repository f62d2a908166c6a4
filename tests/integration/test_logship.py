"""The log shipper against a real container (runc + conmon) and a real Redis: entries arrive in
the container's stream with strictly increasing seq, stdout/stderr and conmon's timestamps;
a shipper killed and started again resumes exactly where it stopped (no duplicate, no gap);
watched containers get stats samples; the full log downloads through Redis."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from runtime.agent.logship import (
    LogShipper,
    download_key,
    log_stream_key,
    requests_key,
    state_key,
    stats_stream_key,
    stats_watch_key,
)
from runtime.containers.options import RunOptions
from runtime.protocol import UID_LABEL
from tests.panel.fixtures import redis_server

pytestmark = pytest.mark.root


def _until(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _seqs(redis: Any, uid: str) -> list[int]:
    return [int(i.decode().split("-")[0]) for i, _ in redis.xrange(log_stream_key(uid))]


def test_shipper_streams_lines_and_resumes_after_restart_without_duplicates(host):
    uid = str(uuid.uuid4())
    script = ('i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; '
              'usleep 5000; done; sleep 60')
    container = host.containers.run(RunOptions(image="busybox", command=["sh", "-c", script],
                                               labels={UID_LABEL: uid}, networks=["none"]))
    with redis_server() as server:
        redis = server.client()
        first = LogShipper(host, server.url, "h1", poll_interval=0.01)
        assert first.start()
        _until(lambda: len(_seqs(redis, uid)) >= 100)
        first.stop()  # as a crash between batches would
        shipped = len(_seqs(redis, uid))
        second = LogShipper(host, server.url, "h1", poll_interval=0.01)
        assert second.start()
        try:
            _until(lambda: len(_seqs(redis, uid)) == 800, timeout=30)
            seqs = _seqs(redis, uid)
            assert seqs == list(range(1, 801)) and shipped < 800
            entries = [{k.decode(): v.decode() for k, v in f.items()}
                       for _, f in redis.xrange(log_stream_key(uid))]
            assert sorted(e["text"] for e in entries if e["stream"] == "stdout") == \
                sorted(f"out {i}" for i in range(1, 401))
            assert {e["stream"] for e in entries} == {"stdout", "stderr"}
            assert entries[0]["ts"].endswith("+00:00") or entries[0]["ts"].endswith("Z")
            assert redis.hget(state_key(uid), "seq") == b"800"

            # stats only while watched
            assert not redis.exists(stats_stream_key(uid))
            redis.set(stats_watch_key(uid), "1", ex=5)
            sample = _until(lambda: redis.xrange(stats_stream_key(uid)))
            assert json.loads(sample[0][1][b"json"])["memory_usage"] > 0

            # the full log through Redis
            token = uuid.uuid4().hex
            redis.rpush(requests_key("h1"), json.dumps({"kind": "log", "uid": uid,
                                                        "token": token}))
            chunks = []
            while True:
                item = redis.blpop([download_key(token)], timeout=10)
                assert item is not None
                if not item[1]:
                    break
                chunks.append(item[1])
            lines = b"".join(chunks).decode().splitlines()
            assert len(lines) == 800 and "out 400" in lines
        finally:
            second.stop()
            host.containers.remove(container.id, force=True)


def test_second_shipper_for_one_state_dir_does_not_start(host):
    with redis_server() as server:
        first = LogShipper(host, server.url, "h1")
        assert first.start()
        try:
            assert not LogShipper(host, server.url, "h1").start()
        finally:
            first.stop()
