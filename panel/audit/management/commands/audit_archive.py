"""`manage.py audit_archive`: move events older than the retention period to a file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from panel.audit.chain import archive


class Command(BaseCommand):
    help = ("Archive audit events older than --days (default BERTH_AUDIT_RETENTION_DAYS) to a "
            "JSON-lines file, keeping the chain anchor so the rest stays verifiable.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=float, default=None)
        parser.add_argument("--directory", type=Path, default=None)

    def handle(self, *args: Any, days: float | None, directory: Path | None,
               **options: Any) -> None:
        days = settings.BERTH_AUDIT_RETENTION_DAYS if days is None else days
        if not days or days < 0:
            raise CommandError("no retention period: set BERTH_AUDIT_RETENTION_DAYS or --days")
        target = directory or Path(settings.BERTH_AUDIT_ARCHIVE_DIR)
        try:
            count, path = archive(timezone.now() - timedelta(days=days), target)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"archived {count} events to {path}" if count else
                          "nothing older than the retention period")
