"""REST API authentication: named API tokens (`Authorization: Bearer brt_…`, or `Token brt_…`)
and the browser session, which counts only when two-factor sign-in was satisfied."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from panel.access.models import ApiToken, hash_token

KEYWORDS = (b"bearer", b"token")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """A usable (not revoked, not expired) token of an active user; `request.auth` is the
    ApiToken, so read-only tokens can be told apart (panel/api/permissions.py)."""

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "malformed Authorization header: use 'Bearer <token>'")
        try:
            secret = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("the token is not text") from None
        token = ApiToken.objects.select_related("user").filter(
            key_hash=hash_token(secret)).first()
        if token is None or not token.is_usable or not token.user.is_active:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        now = timezone.now()
        if token.last_used_at is None or token.last_used_at < now - timedelta(minutes=1):
            # Bookkeeping, not a change anyone made: at most one write a minute, not audited.
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="berth"'


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """The session user, unless two-factor sign-in became required after they signed in and
    this session was not verified with a code (then the request is anonymous)."""

    def authenticate(self, request: Any) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        from panel.access.services import two_factor_required

        user = result[0]
        verified = getattr(request._request.user, "is_verified", lambda: False)()
        if not verified and two_factor_required(user):
            return None
        return result
