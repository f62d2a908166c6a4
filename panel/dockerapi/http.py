"""What every Docker API view shares: the token that says who calls, Docker's error shape
(`{"message": …}` with its status codes) and the API version headers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from panel.access.authentication import ApiTokenAuthentication
from panel.audit.services import Actor
from panel.fleet.dispatch import AgentUnavailable
from panel.workloads.services import Conflict
from panel.workloads.spec import ValidationFailed

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
HEADERS = {"Api-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false",
           "Server": "Berth"}


class DockerError(Exception):
    """An answer in Docker's error shape."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> HttpResponse:
    return with_headers(JsonResponse({"message": message}, status=status))


R = TypeVar("R", bound=HttpResponseBase)


def with_headers(response: R) -> R:
    for name, value in HEADERS.items():
        response[name] = value
    return response


def actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, "docker")


def _messages(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{field}: {' '.join(texts)}" for field, texts in errors.items())


def docker_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """A view answering in Docker's shapes: the caller authenticated by a Berth API token
    (`request.user`, `request.auth`), refusals and bad input as Docker's errors."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, version: str | None = None,
                **kwargs: Any) -> HttpResponseBase:
        try:
            found = ApiTokenAuthentication().authenticate(request)  # type: ignore[arg-type]
        except exceptions.AuthenticationFailed as exc:
            return error(401, str(exc.detail))
        if found is None:
            return error(401, "authenticate with a Berth API token: set the header "
                              "'Authorization: Bearer brt_…' (docker CLI: HttpHeaders in "
                              "~/.docker/config.json)")
        request.user, request.auth = found  # type: ignore[attr-defined]
        try:
            return with_headers(view(request, *args, **kwargs))
        except DockerError as exc:
            return error(exc.status, str(exc))
        except ValidationFailed as exc:
            return error(400, _messages(exc.errors))
        except Conflict as exc:
            return error(409, str(exc))
        except PermissionDenied as exc:
            return error(403, str(exc) or "you may not do this")
        except Http404 as exc:
            return error(404, str(exc) or "not found")
        except AgentUnavailable as exc:
            return error(503, str(exc))

    return wrapped
