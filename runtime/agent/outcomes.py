"""The final reports of the agent's latest operations, kept to be sent again.

A report can be lost after the agent sent it: a control worker killed between taking it off the
`control` queue and noting it as unacknowledged (kombu's Redis transport does those in two
steps) loses it, and its operation would stay `running` for good. The panel asks for the
outcome of an operation that has been silent for a while (`resend_outcomes`); the agent answers
from here. Memory only: after an agent restart its unfinished tasks run again (late
acknowledgement), and they report anew.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

KEPT = 2000  # operations; a report is a few hundred bytes


class Outcomes:
    """operation id → the keyword arguments of its final `operation_progress`, newest last."""

    def __init__(self, size: int = KEPT):
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def keep(self, operation_id: str, report: dict[str, Any]) -> None:
        with self._lock:
            self._kept[operation_id] = report
            self._kept.move_to_end(operation_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def get(self, operation_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._kept.get(operation_id)
