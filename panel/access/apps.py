from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "panel.access"
    verbose_name = "Access"
