"""`manage.py berth_token USER`: print the user's API token, creating it if needed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from panel.audit.services import Actor, record_event


class Command(BaseCommand):
    help = "Print USER's API token (Authorization: Token …), creating it if needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    @transaction.atomic
    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}: create one with "
                               "`manage.py createsuperuser` first")
        token, created = Token.objects.get_or_create(user=user)
        if created:
            record_event(Actor.from_user(user, "cli"), "token.create", user,
                         target_name=user.get_username())
        self.stdout.write(token.key)
