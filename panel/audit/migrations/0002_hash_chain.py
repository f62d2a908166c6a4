"""Hash chain, team/project copies, immutability triggers.

Existing events are chained in id order; `details` becomes canonical JSON text (the hashed
form). Triggers: UPDATE is refused on SQLite and PostgreSQL; DELETE is refused on PostgreSQL
except for events at or before the archived anchor (retention). SQLite gets no DELETE trigger:
its test-database flush deletes rows in an arbitrary order; the model and queryset refuse
deletion there, and the chain exposes any removal."""

import hashlib
import json
from datetime import UTC

from django.db import migrations, models
from django.utils import timezone

GENESIS = "0" * 64
FIELDS = ("seq", "prev_hash", "created_at", "actor_id", "actor_name", "channel", "request_id",
          "source_address", "action", "target_type", "target_id", "target_name", "team_id",
          "team_name", "project_id", "project_name", "outcome", "details_json")


def chain_existing(apps, schema_editor):
    Event = apps.get_model("audit", "AuditEvent")
    Head = apps.get_model("audit", "ChainHead")
    previous, seq = GENESIS, 0
    for event in Event.objects.order_by("id"):
        seq += 1
        event.seq, event.prev_hash = seq, previous
        event.details_json = json.dumps(event.details or {}, sort_keys=True, ensure_ascii=False,
                                        separators=(",", ":"), default=str)
        event.source_address = event.source_address or ""
        # The same canonical form as panel.audit.models.canonical_bytes (kept here as it was
        # when this migration was written).
        values = [getattr(event, f) for f in FIELDS[:-1]]
        values[2] = values[2].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))[:-1]
        event.hash = hashlib.sha256(
            f"{text},{event.details_json}]".encode()).hexdigest()
        event.save()
        previous = event.hash
    Head.objects.update_or_create(pk=1, defaults={"seq": seq, "hash": previous})


SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'audit events are immutable'); END""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS audit_event_no_update"]
POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION audit_event_immutable() RETURNS trigger AS $$
       BEGIN
         IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT anchor_seq FROM audit_anchor WHERE id = 1)
         THEN RETURN OLD; END IF;
         RAISE EXCEPTION 'audit events are immutable (% refused)', TG_OP;
       END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_event_immutable BEFORE UPDATE OR DELETE ON audit_auditevent
       FOR EACH ROW EXECUTE FUNCTION audit_event_immutable()""",
]
POSTGRES_DROP = ["DROP TRIGGER IF EXISTS audit_event_immutable ON audit_auditevent",
                 "DROP FUNCTION IF EXISTS audit_event_immutable()"]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS}.get(vendor, []):
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}.get(vendor, []):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="ChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("seq", models.BigIntegerField(default=0)),
                ("hash", models.CharField(default=GENESIS, max_length=64)),
                ("anchor_seq", models.BigIntegerField(default=0)),
                ("anchor_hash", models.CharField(default=GENESIS, max_length=64)),
                ("anchor_file", models.CharField(blank=True, max_length=500)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"db_table": "audit_anchor"},
        ),
        migrations.AddField("auditevent", "seq", models.BigIntegerField(null=True)),
        migrations.AddField("auditevent", "prev_hash",
                            models.CharField(default="", max_length=64)),
        migrations.AddField("auditevent", "hash", models.CharField(default="", max_length=64)),
        migrations.AddField("auditevent", "team_id",
                            models.BigIntegerField(blank=True, db_index=True, null=True)),
        migrations.AddField("auditevent", "team_name",
                            models.CharField(blank=True, max_length=64)),
        migrations.AddField("auditevent", "project_id",
                            models.BigIntegerField(blank=True, db_index=True, null=True)),
        migrations.AddField("auditevent", "project_name",
                            models.CharField(blank=True, max_length=64)),
        migrations.AddField("auditevent", "details_json", models.TextField(default="{}")),
        migrations.AlterField("auditevent", "source_address",
                              models.CharField(blank=True, max_length=64, null=True)),
        migrations.RunPython(chain_existing, migrations.RunPython.noop),
        migrations.RemoveField("auditevent", "details"),
        migrations.AlterField("auditevent", "source_address",
                              models.CharField(blank=True, default="", max_length=64)),
        migrations.AlterField("auditevent", "seq", models.BigIntegerField(unique=True)),
        migrations.AlterField("auditevent", "prev_hash", models.CharField(max_length=64)),
        migrations.AlterField("auditevent", "hash", models.CharField(max_length=64)),
        migrations.AlterField("auditevent", "created_at",
                              models.DateTimeField(db_index=True, default=timezone.now)),
        migrations.AlterModelOptions("auditevent", {"ordering": ["-seq"]}),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
