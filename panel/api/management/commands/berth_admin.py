"""`manage.py berth_admin`: make sure a platform administrator exists.

On a fresh installation it creates the user `admin` with a random password and prints the
password once; later runs print nothing and change nothing."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first platform administrator (printed once) if none exists."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(options["username"], password=password)
        self.stdout.write(
            f"Created platform administrator {options['username']!r} with password: {password}\n"
            "This password is shown only once; change it after signing in."
        )
