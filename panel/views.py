"""Until the control plane lands (issue 4), the panel shows this host's runtime state read-only."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from runtime.host import Host


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def overview(request: HttpRequest) -> HttpResponse:
    host = Host(settings.RUNTIME_ROOT)
    images = host.images.list()
    containers = host.containers.list(all=True)
    return render(request, "overview.html", {"images": images, "containers": containers})
