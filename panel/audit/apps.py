from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "panel.audit"
    verbose_name = "Audit"
