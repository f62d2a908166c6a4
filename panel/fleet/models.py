"""Hosts of the fleet: one row per agent, kept fresh by heartbeats."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

UP, DOWN = "up", "down"


class HostQuerySet(models.QuerySet):
    def alive(self, now: datetime | None = None) -> HostQuerySet:
        """Hosts marked up whose last heartbeat is within BERTH_HOST_DOWN_AFTER."""
        now = now or timezone.now()
        cutoff = now - timedelta(seconds=settings.BERTH_HOST_DOWN_AFTER)
        return self.filter(status=UP, last_heartbeat__gte=cutoff)


class Host(models.Model):
    """A machine running one agent that consumes the queue `host.<name>`."""

    STATUSES = [(UP, UP), (DOWN, DOWN)]

    name = models.CharField(max_length=128, unique=True)
    labels = models.JSONField(default=dict, blank=True)
    inventory = models.JSONField(default=dict, blank=True)
    cpus = models.PositiveIntegerField(default=0)
    memory = models.BigIntegerField(default=0, help_text="bytes of RAM reported by the agent")
    status = models.CharField(max_length=8, choices=STATUSES, default=UP, db_index=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    down_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def current_status(self, now: datetime | None = None) -> str:
        """"down" as soon as the heartbeat is overdue, even before check_hosts has run."""
        if self.status != UP or self.last_heartbeat is None:
            return DOWN
        now = now or timezone.now()
        silence = (now - self.last_heartbeat).total_seconds()
        return UP if silence <= settings.BERTH_HOST_DOWN_AFTER else DOWN
