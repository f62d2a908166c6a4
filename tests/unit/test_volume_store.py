"""The volume store's Python API: names, labels, create/get/list/remove/prune/purge."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from runtime import fsutil
from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.host import Host
from runtime.volumes import Volume, VolumeStore, validate_volume_name


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "root")


def test_host_volumes_is_a_store_on_the_host_root(tmp_path: Path) -> None:
    host = Host(tmp_path)
    assert isinstance(host.volumes, VolumeStore)
    assert host.volumes.root == tmp_path


def test_create_returns_volume_with_docker_shaped_inspect(store: VolumeStore) -> None:
    volume = store.create("data", labels={"app": "web", "tier": ""})
    assert volume.name == "data"
    assert volume.mountpoint == store.root / "volumes" / "data" / "_data"
    assert volume.mountpoint.is_dir() and not any(volume.mountpoint.iterdir())
    assert volume.anonymous is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", volume.created_at)
    assert volume.to_json() == {
        "CreatedAt": volume.created_at,
        "Driver": "local",
        "Labels": {"app": "web", "tier": ""},
        "Mountpoint": str(volume.mountpoint),
        "Name": "data",
        "Options": {},
        "Scope": "local",
    }


def test_create_without_name_picks_random_64_hex_name(store: VolumeStore) -> None:
    first = store.create(anonymous=True)
    second = store.create(anonymous=True)
    assert re.fullmatch(r"[0-9a-f]{64}", first.name)
    assert first.name != second.name
    assert store.get(first.name).anonymous is True


def test_create_existing_name_returns_it_unchanged(store: VolumeStore) -> None:
    original = store.create("data", labels={"v": "1"})
    (original.mountpoint / "kept").write_text("x")
    again = store.create("data", labels={"v": "2"})
    assert again == original
    assert (again.mountpoint / "kept").read_text() == "x"


@pytest.mark.parametrize("name", [
    "", "a", "-data", ".data", "_data", "a/b", "..", "../x", "da ta", "dätä", "a:b", "x" * 256,
])
def test_create_refuses_names_docker_refuses(store: VolumeStore, name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"invalid volume name .*\[a-zA-Z0-9_.-\]"):
        store.create(name)
    assert store.list() == []


@pytest.mark.parametrize("name", ["ab", "0x", "my.vol_1-2", "A" * 255])
def test_create_accepts_names_docker_accepts(store: VolumeStore, name: str) -> None:
    assert validate_volume_name(name) == name
    assert store.create(name).mountpoint.is_dir()


@pytest.mark.parametrize("labels", [{"": "x"}, {"k": 1}, {3: "x"}, {"k\0": "x"}])
def test_create_refuses_malformed_labels(store: VolumeStore, labels: dict) -> None:
    with pytest.raises(InvalidArgument, match="label"):
        store.create("data", labels=labels)
    assert store.list() == []


def test_failed_create_leaves_nothing_behind(store: VolumeStore, monkeypatch) -> None:
    def broken(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil, "write_json_atomic", broken)
    with pytest.raises(OSError):
        store.create("data")
    assert [p for p in os.listdir(store.base) if p != ".lock"] == []


def test_get_missing_volume_names_it(store: VolumeStore) -> None:
    with pytest.raises(NotFound, match="no such volume: 'ghost'"):
        store.get("ghost")


def test_list_is_sorted_and_ignores_hidden_and_foreign_dirs(store: VolumeStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.create(name)
    (store.base / ".restore-leftover").mkdir()
    (store.base / "notavolume").mkdir()
    assert [v.name for v in store.list()] == ["alpha", "mid", "zeta"]
    assert all(isinstance(v, Volume) for v in store.list())


def test_list_of_fresh_root_is_empty(store: VolumeStore) -> None:
    assert store.list() == []
    assert not store.base.exists()


def test_remove_deletes_volume_and_content(store: VolumeStore) -> None:
    volume = store.create("data")
    (volume.mountpoint / "sub").mkdir()
    (volume.mountpoint / "sub" / "file").write_text("x")
    store.remove("data", users=lambda name: [])
    assert not store.exists("data")
    assert sorted(os.listdir(store.base)) == [".lock"]


def test_remove_refused_while_in_use_names_the_containers(store: VolumeStore) -> None:
    volume = store.create("data")
    (volume.mountpoint / "file").write_text("keep me")
    asked = []

    def users(name: str) -> list[str]:
        asked.append(name)
        return ["web", "worker"]

    with pytest.raises(Conflict, match=r"volume 'data'.*in use.*web, worker"):
        store.remove("data", users=users)
    with pytest.raises(Conflict, match="in use"):
        store.remove("data", users=users, force=True)
    assert asked == ["data", "data"]
    assert (store.get("data").mountpoint / "file").read_text() == "keep me"


def test_remove_missing_volume_raises_unless_forced(store: VolumeStore) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        store.remove("ghost")
    store.remove("ghost", force=True)


def test_prune_removes_unused_anonymous_volumes_only_unless_all(store: VolumeStore) -> None:
    used_anonymous = store.create(anonymous=True).name
    unused_anonymous = store.create(anonymous=True).name
    store.create("named")
    store.create("named-used")
    in_use = {used_anonymous, "named-used"}

    def users(name: str) -> list[str]:
        return ["c1"] if name in in_use else []

    assert store.prune(users) == [unused_anonymous]
    assert store.prune(users, all_volumes=True) == ["named"]
    assert sorted(v.name for v in store.list()) == sorted(in_use)


def test_purge_removes_every_volume_and_leftovers(store: VolumeStore) -> None:
    store.create("one")
    store.create("two")
    (store.base / ".old-leftover" / "deep").mkdir(parents=True)
    store.purge()
    assert not store.base.exists()
    store.purge()  # a second purge of an empty root is a no-op
