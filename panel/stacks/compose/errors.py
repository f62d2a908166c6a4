"""Errors of a compose file: each names the path of the key, its line and column (1-based), and
what Berth allows instead. `ComposeError` carries every problem found, not just the first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Mark = tuple[int, int]  # (line, column), both 1-based; (0, 0) when unknown


@dataclass(frozen=True, order=True)
class Issue:
    """One problem: `path` like "services.web.ports[0]" ("" for the document itself)."""

    line: int
    column: int
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column,
                "message": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}"
        return f"{self.path} ({where}): {self.message}" if self.path else f"{where}: {self.message}"


class ComposeError(Exception):
    """The compose file was refused; `errors` lists every problem, ordered by position."""

    def __init__(self, issues: list[Issue]):
        self.issues = sorted(set(issues))
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """[{"path", "line", "column", "message"}, …], the shape the API and the editor show."""
        return [issue.to_dict() for issue in self.issues]


class Issues:
    """Collects problems while a file is checked; `raise_if_any` ends the check."""

    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, path: str, mark: Mark, message: str) -> None:
        self.items.append(Issue(mark[0], mark[1], path, message))

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ComposeError(self.items)
