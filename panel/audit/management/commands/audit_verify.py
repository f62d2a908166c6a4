"""`manage.py audit_verify`: check the audit hash chain; exit 1 naming the first bad event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from panel.audit.chain import verify, verify_archive


class Command(BaseCommand):
    help = ("Verify the audit log's hash chain (and archive files given with --archive). "
            "Exits non-zero naming the first event that was altered, removed or inserted.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--archive", action="append", default=[], type=Path,
                            help="also verify this archive file (repeatable)")

    def handle(self, *args: Any, archive: list[Path], **options: Any) -> None:
        for path in archive:
            result = verify_archive(path)
            if result.problem is not None:
                raise CommandError(f"audit archive broken: {result.problem.message}")
            self.stdout.write(f"{path}: {result.checked} events, chain intact")
        start = time.perf_counter()
        result = verify()
        seconds = time.perf_counter() - start
        if result.problem is not None:
            raise CommandError(f"audit chain broken after {result.checked} good events: "
                               f"{result.problem.message}")
        self.stdout.write(f"audit chain intact: {result.checked} events verified in "
                          f"{seconds:.2f} s")
