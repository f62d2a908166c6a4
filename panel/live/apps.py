from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "panel.live"
    label = "live"
    verbose_name = "Live data over WebSockets"
