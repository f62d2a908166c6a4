"""Lockout after repeated sign-in failures (django-axes), for sign-ins that come with a request.

Django's test client and management commands authenticate without a request; axes refuses those
outright, so they pass through here (they are not a network sign-in to throttle)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
