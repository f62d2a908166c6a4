"""The ASGI application: Django for HTTP (with Berth's static files), Channels for WebSockets
(session authentication, origin check, routes in panel/live/routing.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
django_application = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from panel.live.auth import BerthAuthMiddlewareStack  # noqa: E402
from panel.live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    # Static files are served by the app itself (no separate web server in `make run`).
    "http": ASGIStaticFilesHandler(django_application),
    "websocket": AllowedHostsOriginValidator(
        BerthAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
