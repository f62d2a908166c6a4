"""Audit events: one per change, hash-chained, append-only.

Each event stores `seq` (1, 2, 3… without gaps), the hash of the previous event (`prev_hash`) and
`hash` = SHA-256 of its own canonical content (`canonical_bytes`), which includes `prev_hash`.
`ChainHead` (one row) holds the last seq and hash, so appends are serialised on it and the tail
cannot be cut off unnoticed; it also holds the anchor (last seq and hash archived by retention).

The actor, team and project are copied (id and name), so an event survives their deletion. The
app cannot update or delete an event: the model and its queryset refuse, and database triggers
(migration 0002) refuse UPDATE on SQLite and PostgreSQL and DELETE on PostgreSQL beyond the
archived anchor. `manage.py audit_verify` checks the chain."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from json.encoder import c_encode_basestring, c_make_encoder  # type: ignore[attr-defined]
from typing import Any

from django.db import models
from django.utils import timezone

GENESIS = "0" * 64
# The columns covered by the hash, in canonical order.
HASHED_FIELDS = ("seq", "prev_hash", "created_at", "actor_id", "actor_name", "channel",
                 "request_id", "source_address", "action", "target_type", "target_id",
                 "target_name", "team_id", "team_name", "project_id", "project_name", "outcome",
                 "details_json")


class ImmutableEvent(Exception):
    """Raised on any attempt to change or delete an audit event through the app."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _refuse(value: Any) -> Any:
    raise TypeError(f"{value!r} cannot be part of an audit event's hashed content")


# The C encoder behind json.dumps, built once: `json.dumps` builds one per call, which is a
# third of the cost of hashing an event (verification runs this a million times).
_encode_list = (c_make_encoder(None, _refuse, c_encode_basestring, None, ":", ",", False,
                               False, True) if c_make_encoder else None)


def time_text(moment: datetime | str) -> str:
    """The hashed form of a time: UTC with microseconds, "2026-11-28T14:02:00.000000Z". Also
    accepts SQLite's stored text ("2026-11-28 14:02:00[.ffffff]", UTC), read without parsing."""
    if isinstance(moment, str):
        if moment.endswith("Z"):
            return moment
        return moment.replace(" ", "T", 1) + ("Z" if "." in moment else ".000000Z")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(values: tuple[Any, ...] | list[Any]) -> bytes:
    """The hashed form of an event: its HASHED_FIELDS values (the first 18 items of `values`;
    more are ignored) as one compact JSON array, the
    details (already canonical JSON text) embedded as the last element, not re-escaped. JSON
    escaping of the other fields makes every boundary unambiguous; embedding the details as is
    keeps verification fast (this runs once per event in `audit_verify`)."""
    head = list(values[:17])
    head[2] = time_text(head[2])
    text = "".join(_encode_list(head, 0)) if _encode_list else _ENCODER.encode(head)
    return (text[:-1] + "," + values[17] + "]").encode()


def event_hash(values: tuple[Any, ...] | list[Any]) -> str:
    return hashlib.sha256(canonical_bytes(values)).hexdigest()


def canonical_details(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise ImmutableEvent("audit events cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableEvent("audit events cannot be deleted (retention archives them: "
                             "manage.py audit_archive)")

    def _raw_delete(self, using: str) -> int:  # used by cascades and retention
        raise ImmutableEvent("audit events cannot be deleted")


class AuditEvent(models.Model):
    CHANNELS = [(c, c) for c in ("web", "api", "ws", "agent", "system", "cli",
                                         "docker")]
    OUTCOMES = [(o, o) for o in ("succeeded", "failed", "denied")]

    seq = models.BigIntegerField(unique=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150)
    channel = models.CharField(max_length=10, choices=CHANNELS)
    request_id = models.CharField(max_length=64, blank=True)
    source_address = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    target_name = models.CharField(max_length=255, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    team_name = models.CharField(max_length=64, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True)
    project_name = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=OUTCOMES, default="succeeded")
    details_json = models.TextField(default="{}")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        # Pages list the newest events first (ORDER BY seq DESC LIMIT 51). An equality filter
        # (a team's auditor, ?actor=, ?action=, ?project=) reads its index in seq order and
        # stops after 51 rows; a single-column index made SQLite fetch every match and sort.
        # No index on created_at: without range statistics SQLite always picked it for a date
        # filter and sorted the whole range (0.3 s for a year of 100,000 events); scanning in
        # seq order stops at the first page instead (see bench/bench_audit_pages.py).
        indexes = [models.Index(fields=["target_type", "target_id"],
                                name="audit_audit_target__59bbff_idx"),
                   models.Index(fields=["team_id", "seq"], name="audit_team_seq_idx"),
                   models.Index(fields=["project_id", "seq"], name="audit_project_seq_idx"),
                   models.Index(fields=["actor_name", "seq"], name="audit_actor_seq_idx"),
                   models.Index(fields=["action", "seq"], name="audit_action_seq_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} " \
               f"{self.action} {self.target_type}:{self.target_name or self.target_id} " \
               f"{self.outcome}"

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.details_json or "{}")

    @property
    def name(self) -> str:
        return f"#{self.seq} {self.action}"

    @property
    def team(self) -> None:
        """Events keep team ids, not rows (the policy reads `team_id`)."""
        return None

    def hashed_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in HASHED_FIELDS)

    def compute_hash(self) -> str:
        return event_hash(self.hashed_values())

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableEvent(f"audit event #{self.seq} cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ImmutableEvent(f"audit event #{self.seq} cannot be deleted")


class ChainHead(models.Model):
    """The single row (pk 1) that serialises appends and anchors the chain.

    `seq`/`hash`: the last event appended. `anchor_seq`/`anchor_hash`: the last event archived
    by retention (0 / GENESIS when nothing was archived); the first remaining event must follow
    it. Named "anchor" in the database."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS)
    anchor_seq = models.BigIntegerField(default=0)
    anchor_hash = models.CharField(max_length=64, default=GENESIS)
    anchor_file = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "audit_anchor"

    def __str__(self) -> str:
        return f"head #{self.seq} {self.hash[:12]}, anchor #{self.anchor_seq}"
