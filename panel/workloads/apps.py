from django.apps import AppConfig


class WorkloadsConfig(AppConfig):
    name = "panel.workloads"
    verbose_name = "Workloads"
