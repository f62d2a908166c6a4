"""Scheduled volume backups against real storage: a directory, and an S3 API served by moto's
server on loopback (boto3 talks HTTP to it, as to any S3-compatible store). Backups are pruned by
keep-N-daily/weekly, and the restore drill proves the newest one restores byte-exact and catches
a damaged one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import InvalidArgument
from runtime.volumes import VolumeStore
from runtime.volumes.scheduled import BackupFailed, back_up, drill, target_from, tree_digest
from tests.panel.fixtures import S3_KEYS, free_port, s3_bucket, s3_server

KEYS = S3_KEYS


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    store = VolumeStore(tmp_path / "root")
    volume = store.create("appdata")
    data = volume.mountpoint
    (data / "db").mkdir()
    (data / "db" / "rows.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (data / "config.ini").write_text("a=1\n")
    os.chmod(data / "config.ini", 0o640)
    os.symlink("db/rows.bin", data / "latest")
    return store


def _targets(kind: str, tmp_path: Path, s3_url: str) -> dict[str, Any]:
    if kind == "directory":
        return {"kind": "directory", "path": str(tmp_path / "backups")}
    _, bucket = s3_bucket(s3_url)
    return {"kind": "s3", "bucket": bucket, "prefix": "berth/host-1", "endpoint_url": s3_url,
            **KEYS}


@pytest.mark.parametrize("kind", ["directory", "s3"])
def test_backups_are_pruned_by_the_rule_and_the_drill_restores_byte_exact(
        kind: str, store: VolumeStore, tmp_path: Path, s3_url: str) -> None:
    target = target_from(_targets(kind, tmp_path, s3_url))
    now = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    # a nightly schedule that ran for 20 days, and once more early on the last one (the rule
    # keeps the newest backup of a day: the 01:00 one goes as soon as the 03:00 one is made)
    for day in range(20, 0, -1):
        back_up(store, "appdata", target, keep_daily=30, keep_weekly=0,
                scratch=tmp_path / "scratch", now=now - timedelta(days=day))
    back_up(store, "appdata", target, 30, 0, tmp_path / "scratch",
            now=now - timedelta(days=1, hours=2))
    assert len(target.list("appdata")) == 20
    result = back_up(store, "appdata", target, keep_daily=3, keep_weekly=2,
                     scratch=tmp_path / "scratch", now=now)
    kept = [s.taken_at for s in target.list("appdata")]
    # the newest of each of the last 3 days, and the newest of each of the last 2 ISO weeks
    assert kept == sorted({now, now - timedelta(days=1), now - timedelta(days=2),
                           now - timedelta(days=4)})
    assert len(result.deleted) == 21 - 4
    assert result.tree == tree_digest(store.get("appdata").mountpoint)

    proof = drill(store, "appdata", target, tmp_path / "scratch")
    assert proof == {"backup": result.name, "sha256": result.sha256, "tree": result.tree,
                     "byte_exact": True}
    assert not store.exists("appdata-drill")
    assert not any((tmp_path / "scratch").iterdir())  # no archive left on the host


def test_a_damaged_backup_fails_the_drill_before_anything_is_restored(
        store: VolumeStore, tmp_path: Path) -> None:
    target = target_from({"kind": "directory", "path": str(tmp_path / "backups")})
    result = back_up(store, "appdata", target, 7, 4, tmp_path / "scratch")
    archive = tmp_path / "backups" / "appdata" / result.name
    damaged = bytearray(archive.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    archive.write_bytes(bytes(damaged))
    with pytest.raises(BackupFailed, match="is damaged"):
        drill(store, "appdata", target, tmp_path / "scratch")
    assert not store.exists("appdata-drill")


def test_a_rule_that_keeps_nothing_is_refused_before_any_backup(store: VolumeStore,
                                                                tmp_path: Path) -> None:
    target = target_from({"kind": "directory", "path": str(tmp_path / "backups")})
    with pytest.raises(InvalidArgument, match="keep at least one"):
        back_up(store, "appdata", target, 0, 0, tmp_path / "scratch")
    assert target.list("appdata") == []


def test_an_unreachable_s3_store_fails_the_backup_saying_so(store: VolumeStore,
                                                           tmp_path: Path) -> None:
    target = target_from({"kind": "s3", "bucket": "nowhere", "endpoint_url":
                          f"http://127.0.0.1:{free_port()}", **KEYS})
    with pytest.raises(BackupFailed, match="could not store the backup of appdata"):
        back_up(store, "appdata", target, 7, 4, tmp_path / "scratch")
    assert not any((tmp_path / "scratch").iterdir())
