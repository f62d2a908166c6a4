"""The container name index: one marker per name, correct across processes and crashes."""

from __future__ import annotations

import multiprocessing
import secrets

import pytest

from runtime.containers.record import Container, ContainerStore
from runtime.errors import Conflict, NotFound


def _record(store: ContainerStore, name: str) -> Container:
    """A container record as `_create` writes it: the name claimed, then the record."""
    container_id = secrets.token_hex(32)
    container = Container(id=container_id, name=name, created="", image_id="", image_ref="",
                          config={}, host_config={}, mounts=[],
                          directory=store.directory(container_id))
    with store.lock():
        store.claim_name(name, container_id)
        container.directory.mkdir(parents=True)
        store.save(container)
    return container


def test_a_taken_name_is_refused_naming_its_owner(tmp_path):
    store = ContainerStore(tmp_path)
    web = _record(store, "web")
    assert store.name_owner("web") == web.id
    with pytest.raises(Conflict, match=f"already in use by container {web.short_id}"):
        _record(store, "web")
    assert store.find("web").id == web.id and store.find(web.id[:8]).id == web.id


def test_removing_a_container_frees_its_name(tmp_path):
    store = ContainerStore(tmp_path)
    store.remove(_record(store, "web"))
    assert store.name_owner("web") is None
    with pytest.raises(NotFound):
        store.find("web")
    assert store.find(_record(store, "web").id[:10]).name == "web"


def test_a_stale_marker_whose_record_is_gone_is_reclaimed(tmp_path):
    store = ContainerStore(tmp_path)
    crashed = _record(store, "web")
    import shutil

    shutil.rmtree(crashed.directory)  # a crash after the record went, before the marker did
    assert store.name_owner("web") is None
    again = _record(store, "web")
    store.release_name(crashed)  # the late cleanup of the old one leaves the new claim alone
    assert store.name_owner("web") == again.id


def test_an_existing_root_is_indexed_on_first_claim(tmp_path):
    store = ContainerStore(tmp_path)
    old = _record(store, "old")
    import shutil

    shutil.rmtree(store.names_dir)  # a root from before the index existed
    assert store.find("old").id == old.id  # found by scanning meanwhile
    with pytest.raises(Conflict):
        _record(store, "old")
    assert (store.names_dir / "old").read_text() == old.id


def _claim(root: str, name: str, results) -> None:
    try:
        results.put(_record(ContainerStore(__import__("pathlib").Path(root)), name).id)
    except Conflict:
        results.put(None)


def test_concurrent_processes_never_share_a_name(tmp_path):
    results = multiprocessing.get_context("fork").Queue()
    workers = [multiprocessing.get_context("fork").Process(
        target=_claim, args=(str(tmp_path), "web", results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    winners = [r for r in (results.get(timeout=5) for _ in workers) if r]
    assert len(winners) == 1
    assert ContainerStore(tmp_path).find("web").id == winners[0]
