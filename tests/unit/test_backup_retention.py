from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from runtime.volumes.retention import backups_to_keep

MONDAY = datetime(2026, 11, 2, 3, 0)  # ISO week 45


def test_daily_keeps_the_newest_backup_of_each_recent_day() -> None:
    times = [MONDAY + timedelta(days=d, hours=h) for d in range(5) for h in (0, 12)]
    kept = backups_to_keep(times, daily=3, weekly=0)
    assert kept == {MONDAY + timedelta(days=d, hours=12) for d in (2, 3, 4)}


def test_weekly_keeps_the_newest_backup_of_each_recent_iso_week() -> None:
    times = [MONDAY + timedelta(days=d) for d in range(0, 28)]  # four full weeks
    kept = backups_to_keep(times, daily=0, weekly=2)
    assert kept == {MONDAY + timedelta(days=27), MONDAY + timedelta(days=20)}


def test_daily_and_weekly_keep_the_union_and_days_without_backups_do_not_count() -> None:
    times = [MONDAY + timedelta(days=d) for d in (0, 1, 9, 10, 20)]
    kept = backups_to_keep(times, daily=2, weekly=3)
    assert kept == {MONDAY + timedelta(days=20), MONDAY + timedelta(days=10),
                    MONDAY + timedelta(days=1)}


def test_fewer_backups_than_the_counts_are_all_kept() -> None:
    times = [MONDAY, MONDAY + timedelta(days=8)]
    assert backups_to_keep(times, daily=7, weekly=4) == set(times)


@pytest.mark.parametrize(("daily", "weekly", "message"), [
    (-1, 2, "keep_daily must be 0 or more, not -1"),
    (1, -3, "keep_weekly must be 0 or more, not -3"),
    (0, 0, "keep at least one daily or weekly backup"),
])
def test_retention_refuses_counts_that_make_no_sense(daily: int, weekly: int,
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backups_to_keep([MONDAY], daily=daily, weekly=weekly)
