"""Indexes for the audit pages' newest-first keyset pages (ORDER BY seq DESC LIMIT 51).

The single-column indexes on team_id, project_id and action become (column, seq): a team's
auditor or an ?action=/?project= filter then reads 51 index entries in seq order instead of
fetching every match and sorting it (a team's 10,000 events: 45 ms to 0.2 ms on SQLite).
(actor_name, seq) is new, for ?actor=. The created_at index goes: SQLite (no range statistics)
chose it for every date filter and sorted the whole range, 0.3 s for a year of 100,000 events;
without it, a date filter reads in seq order and stops at the first page.

The old indexes are dropped with DROP INDEX, not AlterField: on SQLite AlterField remakes the
table, which copies the whole log and drops its immutability trigger (migration 0002)."""

from django.db import migrations, models
from django.utils import timezone

TABLE = "audit_auditevent"
# The names Django gave the db_index=True indexes (the same on SQLite and PostgreSQL), and the
# extra LIKE-prefix index PostgreSQL has for the varchar `action`.
OLD = {"action": "audit_auditevent_action_2131bb77",
       "created_at": "audit_auditevent_created_at_58e81936",
       "team_id": "audit_auditevent_team_id_1d85c2da",
       "project_id": "audit_auditevent_project_id_fb9ed4de"}
POSTGRES_LIKE = ("action", "audit_auditevent_action_2131bb77_like", "varchar_pattern_ops")


def drop_old(apps, schema_editor):
    names = list(OLD.values())
    if schema_editor.connection.vendor == "postgresql":
        names.append(POSTGRES_LIKE[1])
    for name in names:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"', params=None)


def restore_old(apps, schema_editor):
    for column, name in OLD.items():
        schema_editor.execute(f'CREATE INDEX "{name}" ON "{TABLE}" ("{column}")', params=None)
    if schema_editor.connection.vendor == "postgresql":
        column, name, opclass = POSTGRES_LIKE
        schema_editor.execute(f'CREATE INDEX "{name}" ON "{TABLE}" ("{column}" {opclass})',
                              params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_hash_chain")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField("auditevent", "action", models.CharField(max_length=64)),
                migrations.AlterField("auditevent", "created_at",
                                      models.DateTimeField(default=timezone.now)),
                migrations.AlterField("auditevent", "project_id",
                                      models.BigIntegerField(blank=True, null=True)),
                migrations.AlterField("auditevent", "team_id",
                                      models.BigIntegerField(blank=True, null=True)),
            ],
            database_operations=[migrations.RunPython(drop_old, restore_old)],
        ),
        migrations.AddIndex("auditevent", models.Index(fields=["team_id", "seq"],
                                                       name="audit_team_seq_idx")),
        migrations.AddIndex("auditevent", models.Index(fields=["project_id", "seq"],
                                                       name="audit_project_seq_idx")),
        migrations.AddIndex("auditevent", models.Index(fields=["actor_name", "seq"],
                                                       name="audit_actor_seq_idx")),
        migrations.AddIndex("auditevent", models.Index(fields=["action", "seq"],
                                                       name="audit_action_seq_idx")),
    ]
