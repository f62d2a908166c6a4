from django.urls import path

from panel.live import consumers, stack_logs

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi()),
    path("ws/containers/<int:container_id>/logs/", consumers.LogsConsumer.as_asgi()),
    path("ws/containers/<int:container_id>/stats/", consumers.StatsConsumer.as_asgi()),
    path("ws/stacks/<int:stack_id>/logs/", stack_logs.StackLogsConsumer.as_asgi()),
]
