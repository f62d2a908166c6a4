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


def _reference(text: str, since=None, until=None, tail=None) -> list[tuple[str, str, str]]:
    """Every entry by a plain forward read (the whole log in memory), then the tail."""
    assembler = logs._Assembler()
    found = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        entry = assembler.feed(line)
        if entry is None:
            continue
        moment = entry.time
        if (since is None or moment >= since) and (until is None or moment <= until):
            found.append((entry.timestamp, entry.stream, entry.text))
    return found[-tail:] if tail else ([] if tail == 0 else found)


def _random_log(rng, records: int) -> str:
    lines = []
    for i in range(records):
        stream = rng.choice(["stdout", "stderr"])
        tag = "P" if rng.random() < 0.3 else "F"
        text = f"{stream[3]}{i}" + "x" * rng.randrange(0, 40)
        lines.append(f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.{i:09d}+00:00 {stream} {tag} "
                     f"{text}\n")
    return "".join(lines)


@pytest.mark.parametrize("seed", range(12))
def test_tail_reads_backwards_and_matches_a_full_read(tmp_path, monkeypatch, seed):
    import random

    monkeypatch.setattr(logs, "BACK_BLOCK", 97)  # many block boundaries inside records
    rng = random.Random(seed)
    text = _random_log(rng, 300) + "2026-01-01T01:00:00.0+00:00 stdout F unfinished"
    path = tmp_path / "ctr.log"
    path.write_text(text)
    for tail in (0, 1, 2, 5, 17, 299, 1000):
        reader = logs.LogReader(path, tail=tail)
        got = [logs.decode(raw) for raw in reader]
        assert [(e.timestamp, e.stream, e.text) for e in got] == _reference(text, tail=tail)
        assert reader.offset == text.rindex("\n") + 1
    since = logs.parse_time("2026-01-01T00:01:00Z", "--since")
    until = logs.parse_time("2026-01-01T00:03:00Z", "--until")
    for tail in (None, 1, 7, 100):
        entries, _ = logs.read_entries(path, since=since, until=until, tail=tail)
        assert [(e.timestamp, e.stream, e.text) for e in entries] == _reference(
            text, since, until, tail)


def test_reader_streams_large_logs_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "READ_BLOCK", 64)
    path = tmp_path / "ctr.log"
    path.write_text("".join(f"2026-01-01T00:00:00.{i:09d}+00:00 stdout {'P' if i % 3 else 'F'} "
                            f"{i}\n" for i in range(1, 1001)))
    texts = [raw[2] for raw in logs.LogReader(path)]
    assert len(texts) == 333 and texts[0] == b"123"
    assert logs.format_raw((b"2026-01-01T00:00:00.5+00:00", b"stdout", b"hi", True), True) == (
        b"2026-01-01T00:00:00.5Z hi\n")
