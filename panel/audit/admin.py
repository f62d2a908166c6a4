from django.contrib import admin

from panel.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: nothing in the app edits or deletes an audit event."""

    list_display = ("created_at", "actor_name", "channel", "action", "target_type",
                    "target_name", "outcome")
    list_filter = ("channel", "outcome", "action")

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
