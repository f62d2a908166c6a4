from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _sqlite_wal(sender, connection, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """WAL lets the web server read while the control worker writes the same SQLite file;
    temp_store=MEMORY keeps a savepoint's undo data off the disk once it outgrows SQLite's
    64 KiB buffer (an audited change inside a savepoint did). Database plumbing only: no
    business logic lives in signal receivers."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA temp_store=MEMORY")


class FleetConfig(AppConfig):
    name = "panel.fleet"
    verbose_name = "Fleet"

    def ready(self) -> None:
        connection_created.connect(_sqlite_wal, dispatch_uid="berth-sqlite-wal")
