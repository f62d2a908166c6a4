"""Appending to the audit chain: three statements per event, the event read back exactly as it
was hashed, a rolled-back change leaving no gap, a second writer waiting for an uncommitted
append and chaining onto it, and `audit_verify`'s database-built canonical text agreeing with
Python's (with Python deciding whenever it does not)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from panel.audit.chain import _hashed_values, _rows, verify
from panel.audit.models import (
    AuditEvent,
    ChainHead,
    canonical_bytes,
    canonical_details,
    event_hash,
)
from panel.audit.services import Actor, append, record_event

TABLE = AuditEvent._meta.db_table
# Every character JSON escapes or might (all of ASCII but NUL, which PostgreSQL text refuses),
# and some that it must not (non-ASCII, line and paragraph separators, a BOM).
TRICKY = "".join(chr(c) for c in range(1, 128)) + "é€😀\u2028\u2029\ufeff"


def _record(name: str = "ana", **details: Any) -> AuditEvent:
    return record_event(Actor(name=name, channel="system"), "container.reconcile",
                        target_type="container", target_id="1", **details)


@pytest.mark.django_db
def test_an_audited_change_costs_three_statements(django_assert_num_queries):
    with transaction.atomic():
        _record()  # the chain head exists from here on
        with django_assert_num_queries(3) as captured:
            _record()
    assert [q["sql"].split()[0] for q in captured.captured_queries] == \
        ["UPDATE", "INSERT", "UPDATE"]


@pytest.mark.django_db
def test_an_appended_event_reads_back_exactly_as_it_was_hashed():
    # Whole seconds (stored without a fraction on SQLite) in a zone other than UTC.
    moment = dt.datetime(2026, 11, 28, 15, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with transaction.atomic():
        event = append(AuditEvent(
            created_at=moment, actor_id=None, actor_name='Zoë "z" \\ 😀', channel="cli",
            request_id="r-1", source_address="", action="volume.restore", target_type="volume",
            target_id="7", target_name="data\nline", team_id=3, team_name="ops",
            project_id=None, project_name="", outcome="failed",
            details_json=canonical_details({"bytes": 10, "note": "é\t"})))
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.hashed_values() == event.hashed_values()
    assert stored.hash == event.hash == stored.compute_hash()
    head = ChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (event.seq, event.hash)
    assert verify().ok


@pytest.mark.django_db
def test_an_append_rolled_back_with_its_change_leaves_no_gap():
    with transaction.atomic():
        first = _record()
        with pytest.raises(RuntimeError), transaction.atomic():
            _record(name="doomed")
            raise RuntimeError("the change failed")
        after = _record()
    assert (after.seq, after.prev_hash) == (first.seq + 1, first.hash)
    assert not AuditEvent.objects.filter(actor_name="doomed").exists()
    assert verify().ok


def _backend_waits_for_a_lock(pid: int) -> bool:
    """Whether PostgreSQL backend `pid` is blocked on a lock, polled for up to 30 s."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return True
            time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_a_writer_waits_for_an_uncommitted_append_and_chains_onto_it():
    """Writer A appends and keeps its transaction open; writer B appends meanwhile. B waits (on
    PostgreSQL for the head row's lock, on SQLite for the write lock its BEGIN IMMEDIATE takes)
    and, once A commits, gets the next seq and A's hash: the chain never forks."""
    appended, release, b_ready = threading.Event(), threading.Event(), threading.Event()
    events: dict[str, Any] = {}
    errors: list[BaseException] = []

    def writer_a() -> None:
        try:
            with transaction.atomic():
                events["a"] = _record(name="writer-a")
                appended.set()
                release.wait(60)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def writer_b() -> None:
        try:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    events["b_pid"] = cursor.fetchone()[0]
            b_ready.set()
            with transaction.atomic():
                events["b"] = _record(name="writer-b")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    a = threading.Thread(target=writer_a)
    a.start()
    try:
        assert appended.wait(30)
        b = threading.Thread(target=writer_b)
        b.start()
        assert b_ready.wait(30)
        if connection.vendor == "postgresql":
            assert _backend_waits_for_a_lock(events["b_pid"]), "writer B did not wait for A"
            assert "b" not in events
    finally:
        release.set()
        a.join(60)
    b.join(60)
    assert not errors, errors
    assert (events["b"].seq, events["b"].prev_hash) == (events["a"].seq + 1, events["a"].hash)
    assert verify().ok


@pytest.mark.django_db
def test_the_database_builds_the_same_canonical_text_as_python():
    with transaction.atomic():
        record_event(Actor(name=TRICKY, channel="api"), "container.rename",
                     target_type="container", target_id="x", target_name=TRICKY, note=TRICKY)
        record_event(Actor(name="bob", channel="cli", user_id=7), "volume.remove",
                     target_type="volume", target_id="9", size=2**40, ratio=0.25, keep=None)
    rows = list(_rows(100))
    assert len(rows) >= 2
    for _seq, _prev_hash, _stored, event_id, text in rows:
        assert text.encode() == canonical_bytes(_hashed_values(event_id))
    assert verify().ok


@pytest.mark.django_db
def test_an_event_the_database_renders_differently_is_checked_in_python():
    """A time stored in ISO form ("…T…Z", as a hand-written row could have it) is one that
    SQLite's canonical text renders differently: the check falls back to Python's form, which
    accepts the intact event and still names an altered one."""
    last = _record()
    values = [last.seq + 1, last.hash, "2026-11-28T14:02:00.000000Z", None, "ana", "cli", "r-9",
              "", "container.stop", "container", "1", "web", None, "", None, "", "succeeded",
              "{}"]
    columns = ("seq", "prev_hash", "created_at", "actor_id", "actor_name", "channel",
               "request_id", "source_address", "action", "target_type", "target_id",
               "target_name", "team_id", "team_name", "project_id", "project_name", "outcome",
               "details_json")
    digest = event_hash(values)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} ({', '.join(columns)}, hash) "
                       f"VALUES ({', '.join(['%s'] * len(columns))}, %s)", [*values, digest])
        ChainHead.objects.filter(pk=1).update(seq=last.seq + 1, hash=digest)
    assert verify().ok and verify().checked >= 2
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        else:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        cursor.execute(f"UPDATE {TABLE} SET target_name = 'forged' WHERE seq = %s",
                       [last.seq + 1])
    problem = verify().problem
    assert problem is not None and problem.kind == "altered" and problem.seq == last.seq + 1
