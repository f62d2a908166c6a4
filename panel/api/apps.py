from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "panel.api"
    verbose_name = "REST API"
