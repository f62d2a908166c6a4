from django.apps import AppConfig


class StacksConfig(AppConfig):
    name = "panel.stacks"
    verbose_name = "Stacks"
