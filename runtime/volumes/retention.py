"""Which scheduled backups to keep: "keep N daily / N weekly", as restic's and borg's
``--keep-daily`` / ``--keep-weekly`` mean it.

1. Backups are taken newest first.
2. Daily: the newest backup of each of the `daily` most recent calendar days that have one.
3. Weekly: the newest backup of each of the `weekly` most recent ISO weeks that have one.
4. A backup kept by either rule is kept; every other one may be deleted.

Days and weeks are those of the timestamps as given (pass them all in one time zone, UTC)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime


def _newest_per_period(times: list[datetime], count: int,
                       period: Callable[[datetime], Hashable]) -> set[datetime]:
    kept: dict[Hashable, datetime] = {}
    for moment in times:  # newest first, so the first one of a period is its newest
        key = period(moment)
        if key not in kept:
            if len(kept) == count:
                break
            kept[key] = moment
    return set(kept.values())


def backups_to_keep(times: Iterable[datetime], daily: int, weekly: int) -> set[datetime]:
    """The timestamps among `times` that the retention rule keeps (see the module docstring).

    Raises ValueError when a count is negative or both are 0 (that would delete every backup)."""
    for field, value in (("keep_daily", daily), ("keep_weekly", weekly)):
        if value < 0:
            raise ValueError(f"{field} must be 0 or more, not {value}")
    if daily == 0 and weekly == 0:
        raise ValueError("keep_daily and keep_weekly are both 0: keep at least one daily or "
                         "weekly backup")
    ordered = sorted(set(times), reverse=True)
    return (_newest_per_period(ordered, daily, lambda t: t.date())
            | _newest_per_period(ordered, weekly, lambda t: t.isocalendar()[:2]))
