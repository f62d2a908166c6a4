"""`manage.py berth_token USER [--name N] [--read-only] [--days D]`: create an API token for
USER and print its secret (stored hashed, so this is the only time it is shown)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from panel.access.services import create_token
from panel.audit.services import Actor


class Command(BaseCommand):
    help = "Create an API token for USER and print it (Authorization: Bearer …); shown once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--read-only", action="store_true")
        parser.add_argument("--days", type=int, default=None, help="expire after D days")

    def handle(self, *args: Any, username: str, name: str, read_only: bool,
               days: int | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}: create one with "
                               "`manage.py createsuperuser` first")
        expires = timezone.now() + timedelta(days=days) if days else None
        _, secret = create_token(Actor.from_user(user, "cli"), user, name, read_only, expires)
        self.stdout.write(secret)
