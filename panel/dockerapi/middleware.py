"""A path under /docker/ that Berth does not serve answers in Docker's error shape, naming the
call, so the docker CLI prints what is missing instead of an HTML page."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from panel.dockerapi.http import error

PREFIX = "/docker/"


class NotServedMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.path.startswith(PREFIX) and response.status_code == 404 \
                and not response.get("Content-Type", "").startswith("application/json"):
            call = request.path.removeprefix(PREFIX.rstrip("/"))
            return error(404, f"page not found: Berth does not serve {request.method} {call} "
                              "of the Docker API yet")
        return response
