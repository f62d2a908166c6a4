"""Reading conmon's k8s-file logs: partial lines, tail, time windows."""

from __future__ import annotations

import pytest

from runtime.containers import logs
from runtime.errors import InvalidArgument

LOG = (
    "2026-01-01T00:00:01.000000001+00:00 stdout F one\n"
    "2026-01-01T00:00:02.000000000+00:00 stderr P par\n"
    "2026-01-01T00:00:02.500000000+00:00 stdout F two\n"
    "2026-01-01T00:00:03.000000000+00:00 stderr F tial\n"
    "2026-01-01T00:00:04.000000000+00:00 stdout F three\n"
    "2026-01-01T00:00:05.000000000+00:00 stdout P no newline"
)


def test_partial_records_are_joined_per_stream(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_text(LOG)
    entries, offset = logs.read_entries(path)
    assert [(e.stream, e.text) for e in entries] == [
        ("stdout", "one"), ("stdout", "two"), ("stderr", "partial"), ("stdout", "three")]
    assert offset == len(LOG.rsplit("\n", 1)[0]) + 1  # the unterminated record is left


def test_tail_and_time_window(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_text(LOG)
    assert [e.text for e in logs.read_entries(path, tail=2)[0]] == ["partial", "three"]
    assert logs.read_entries(path, tail=0)[0] == []
    since = logs.parse_time("2026-01-01T00:00:02.2Z", "--since")
    until = logs.parse_time("2026-01-01T00:00:03.5Z", "--until")
    window = logs.read_entries(path, since=since, until=until)[0]
    assert [e.text for e in window] == ["two"]  # "partial" starts at 00:02.0


def test_follow_reads_to_the_end_once_stopped(tmp_path):
    path = tmp_path / "ctr.log"
    path.write_text(LOG + "\n")
    entries = list(logs.follow(path, 0, stopped=lambda: True))
    assert entries[-1].text == "no newline" and not entries[-1].complete
    assert logs.format_entry(entries[0], timestamps=True) == (
        "2026-01-01T00:00:01.000000001Z one\n")


def test_since_accepts_durations_and_unix_times():
    assert logs.parse_time("10m", "--since", now=1000.0) == 400.0
    assert logs.parse_time("1700000000", "--since") == 1700000000.0
    with pytest.raises(InvalidArgument, match="--since"):
        logs.parse_time("yesterday", "--since")
