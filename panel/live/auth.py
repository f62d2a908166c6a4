"""WebSocket authentication: the browser session, as for pages (channels' AuthMiddleware), and
treated as anonymous when two-factor sign-in is required but this session was not verified —
the same rule as panel.access.authentication.VerifiedSessionAuthentication."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _verified(scope: dict[str, Any]) -> Any:
    from django_otp import DEVICE_ID_SESSION_KEY

    from panel.access.services import two_factor_required

    user = scope.get("user")
    if user is None or not user.is_authenticated or not user.is_active:
        return AnonymousUser()
    session = scope.get("session")
    if two_factor_required(user) and not (session and session.get(DEVICE_ID_SESSION_KEY)):
        return AnonymousUser()
    return user


class VerifiedUserMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if "user" in scope:
            scope = dict(scope, user=await _verified(scope))
        return await self.app(scope, receive, send)


def BerthAuthMiddlewareStack(app: Any) -> Any:  # noqa: N802 (reads like channels' own)
    return AuthMiddlewareStack(VerifiedUserMiddleware(app))
