"""`visible_to` for the querysets of owned resources (containers, volumes, networks, stacks…):

    Container.objects.visible_to(request.user, "container.stop")

is `policy.visible(user, queryset, action)`, the one choke point (panel/access/policy.py)."""

from __future__ import annotations

from typing import Any

from django.db import models


class ScopedQuerySet(models.QuerySet):
    def visible_to(self, user: Any, action: str | None = None, token: Any = None) -> Any:
        """Rows on which `user` may do `action` (default "<kind>.view")."""
        from panel.access import policy

        return policy.visible(user, self, action, token)
