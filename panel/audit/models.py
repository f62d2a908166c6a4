"""One generic audit event per change, written by the service layer in the change's transaction.

Issue 6 adds hash chaining, retention and the audit pages on top of this one model; the actor's id
and name are copied so an event survives the deletion of its user."""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    CHANNELS = [(c, c) for c in ("web", "api", "ws", "agent", "system", "cli")]
    OUTCOMES = [(o, o) for o in ("succeeded", "failed", "denied")]

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150)
    channel = models.CharField(max_length=10, choices=CHANNELS)
    request_id = models.CharField(max_length=64, blank=True)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    target_name = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES, default="succeeded")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} " \
               f"{self.target_type}:{self.target_name or self.target_id} {self.outcome}"
