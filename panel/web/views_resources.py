"""Dashboard pages for images, volumes, networks, operations, and the file transfers (image
upload, volume backup download and restore, full log download)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from panel.access import policy
from panel.access.models import Project
from panel.fleet.models import UP, Host
from panel.live import transfers
from panel.live.emit import operation_event
from panel.web.common import (
    actor,
    audit_refused_project,
    error_text,
    get_visible,
    human_bytes,
    signed_in,
)
from panel.web.forms import NetworkForm, PullForm, VolumeForm
from panel.web.views import _project, _project_choices
from panel.workloads import services
from panel.workloads.models import Container, Image, Network, Operation, Volume
from panel.workloads.spec import ValidationFailed


def _alive_host(name: str) -> Host:
    """A host that is up (transfers need its agent), or a validation error naming it."""
    hosts = Host.objects.alive()
    host = hosts.filter(name=name).first() if name else hosts.order_by("name").first()
    if host is None:
        raise ValidationFailed({"host": [f"host {name or '(any)'} is not up: its agent must "
                                         "be running"]})
    return host


def _users_by(field: str, user: Any) -> dict[str, list[str]]:
    """Visible container names per image / volume / network name."""
    users: dict[str, list[str]] = {}
    for name, values in policy.visible(user, Container.objects.all()).values_list("name",
                                                                                  field):
        for value in ([values] if isinstance(values, str) else values or []):
            key = value.split(":", 1)[0] if field == "volumes" else value
            users.setdefault(key, []).append(name)
    return users


@signed_in
def images(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "image.view", None, actor(request))
    rows = Image.objects.prefetch_related("hosts").annotate(n_hosts=Count("hosts"))
    used = _users_by("image", request.user)
    listing = [{"image": i, "size": human_bytes(i.size), "users": used.get(i.reference, []),
                "hosts": [h.name for h in i.hosts.all()]} for i in rows]
    hosts = list(Host.objects.alive().order_by("name").values_list("name", flat=True))
    if request.method == "POST":
        policy.authorize(request.user, "image.pull", None, actor(request))
    form = PullForm(request.POST or None)
    host_field: Any = form.fields["host"]  # a ChoiceField: the stubs type it as Field
    host_field.choices = [("", "every host that is up")] + [(h, h) for h in hosts]
    if request.method == "POST" and form.is_valid():
        policy.authorize(request.user, "image.pull", None, actor(request))
        try:
            _, operations = services.pull_image(actor(request), form.cleaned_data["reference"],
                                                form.cleaned_data["host"] or None)
        except ValidationFailed as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"pulling on {len(operations)} host(s)")
            return HttpResponseRedirect(reverse("web-operation", args=[operations[0].pk]))
    return render(request, "web/images.html", {
        "images": listing, "form": form, "hosts": hosts,
        "can_pull": policy.can(request.user, "image.pull")},
        status=400 if form.errors else 200)


@signed_in
@require_POST
def image_upload(request: HttpRequest) -> JsonResponse:
    """An image archive (OCI or `docker save`, tar or tar.gz) to import on one host; answers
    the operation that tracks the import (the page follows it live)."""
    policy.authorize(request.user, "image.pull", None, actor(request))
    upload = request.FILES.get("archive")
    if upload is None:
        return JsonResponse({"errors": {"archive": ["choose an image archive to upload"]}},
                            status=400)
    try:
        host = _alive_host(request.POST.get("host", ""))
    except ValidationFailed as exc:
        return JsonResponse({"errors": exc.errors}, status=400)
    token, sha256 = transfers.new_token(), transfers.file_sha256(upload)
    operation = transfers.import_image_archive(actor(request), host, token, upload.size or 0,
                                               upload.name or "archive",
                                               request.POST.get("tag") or None, sha256)
    failed = _send(actor(request), operation, host, token, upload, sha256)
    if failed is not None:
        return JsonResponse({"errors": {"archive": [failed]}}, status=503)
    return JsonResponse({"operation": str(operation.pk), "sha256": sha256,
                         "url": reverse("web-operation", args=[operation.pk])}, status=202)


def _send(who: Any, operation: Any, host: Any, token: str, upload: Any,
          sha256: str) -> str | None:
    """Stream an upload to the host that announced `token`; on failure the operation fails
    with the reason, which is returned."""
    try:
        transfers.send_to_host(host.name, token, upload, upload.size or 0, sha256)
    except transfers.TransferFailed as exc:
        from panel.workloads.reports import record_operation_progress

        with transaction.atomic():
            record_operation_progress(who, str(operation.pk), Operation.FAILED, 0, str(exc))
        return str(exc)
    return None


def _resource_page(request: HttpRequest, kind: str, model: Any, form_class: Any,
                   create: Callable[[dict[str, Any], Project | None], Any]) -> HttpResponse:
    """The volumes and networks pages: every visible one with its users and hosts, and the
    create form (`create(cleaned_data, project)` makes one; 400 when the form is refused)."""
    plural = f"{kind}s"
    queryset = policy.visible(request.user, model.objects.prefetch_related("hosts")
                              .select_related("project"))
    used = _users_by(plural, request.user)
    if request.method == "POST":
        policy.authorize(request.user, f"{kind}.create", None, actor(request))
    form = form_class(request.POST or None)
    form.fields["project"].choices = _project_choices(request, f"{kind}.create")
    audit_refused_project(request, f"{kind}.create")
    if request.method == "POST" and form.is_valid():
        project = _project(request, form.cleaned_data["project"], f"{kind}.create")
        try:
            made = create(form.cleaned_data, project)
        except ValidationFailed as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, f"{kind} {made.name} created")
            return HttpResponseRedirect(reverse(f"web-{plural}"))
    rows = [{kind: item, "users": used.get(item.name, []),
             "hosts": [h.name for h in item.hosts.all()],
             "can_change": policy.can(request.user, f"{kind}.remove", item)} for item in queryset]
    return render(request, f"web/{plural}.html", {
        plural: rows, "form": form, "can_create": policy.can(request.user, f"{kind}.create")},
        status=400 if form.errors else 200)


@signed_in
def volumes(request: HttpRequest) -> HttpResponse:
    return _resource_page(request, "volume", Volume, VolumeForm, lambda data, project: (
        services.create_volume(actor(request), data["name"], project=project)[0]))


def _volume_host(volume: Volume, wanted: str) -> Host:
    names = set(volume.hosts.values_list("name", flat=True))
    if wanted and names and wanted not in names:
        raise ValidationFailed({"host": [f"volume {volume.name} is on {', '.join(sorted(names))}"]})
    return _alive_host(wanted or (sorted(names)[0] if names else ""))


@signed_in
@require_POST
def volume_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """remove | backup (download when done) | restore (from an uploaded archive)."""
    if action not in ("remove", "backup", "restore"):
        raise Http404("no such action")
    # Backup and restore copy or replace the data: they need the right to change volumes.
    volume = get_visible(request, Volume.objects.all(), "volume.remove" if action == "remove"
                         else "volume.create", pk=pk)
    try:
        if action == "remove":
            operation = services.remove_volume(actor(request), volume)
        elif action == "backup":
            operation = transfers.backup_volume(actor(request), volume,
                                                _volume_host(volume, request.POST.get("host", "")))
        else:
            upload = request.FILES.get("archive")
            if upload is None:
                raise ValidationFailed({"archive": ["choose a backup archive to restore"]})
            host = _volume_host(volume, request.POST.get("host", ""))
            token, sha256 = transfers.new_token(), transfers.file_sha256(upload)
            operation = transfers.restore_volume(actor(request), volume, host, token,
                                                 upload.size or 0, upload.name or "backup",
                                                 sha256)
            failed = _send(actor(request), operation, host, token, upload, sha256)
            if failed is not None:
                raise services.Conflict(failed)
    except (ValidationFailed, services.Conflict) as exc:
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"errors": getattr(exc, "errors", {"volume": [str(exc)]})},
                                status=400)
        messages.error(request, error_text(exc))
        return HttpResponseRedirect(reverse("web-volumes"))
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"operation": str(operation.pk),
                             "url": reverse("web-operation", args=[operation.pk])}, status=202)
    return HttpResponseRedirect(reverse("web-operation", args=[operation.pk]))


@signed_in
def networks(request: HttpRequest) -> HttpResponse:
    return _resource_page(request, "network", Network, NetworkForm, lambda data, project: (
        services.create_network(actor(request), data["name"], data["subnet"] or None,
                                project=project, internal=data["internal"])[0]))


@signed_in
@require_POST
def network_remove(request: HttpRequest, pk: int) -> HttpResponse:
    network = get_visible(request, Network.objects.all(), "network.remove", pk=pk)
    try:
        operation = services.remove_network(actor(request), network)
    except services.Conflict as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("web-networks"))
    return HttpResponseRedirect(reverse("web-operation", args=[operation.pk]))


@signed_in
def operations(request: HttpRequest) -> HttpResponse:
    queryset = policy.visible(request.user, Operation.objects.all())
    status, kind = request.GET.get("status", ""), request.GET.get("kind", "")
    if status in dict(Operation.STATUSES):
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    return render(request, "web/operations.html", {
        "operations": queryset.order_by("-created_at")[:200], "status": status, "kind": kind,
        "statuses": [s for s, _ in Operation.STATUSES],
        "kinds": sorted(set(Operation.objects.values_list("kind", flat=True).distinct()[:100]))})


def _visible_operation(request: HttpRequest, pk: str) -> tuple[Operation, dict[str, Any]]:
    """The operation `pk` (404 unless a UUID the user may see) and its result dict."""
    try:
        key = uuid.UUID(str(pk))
    except ValueError:
        raise Http404("no such operation") from None
    operation = get_visible(request, Operation.objects.all(), "operation.view", pk=key)
    return operation, operation.result if isinstance(operation.result, dict) else {}


@signed_in
def operation_detail(request: HttpRequest, pk: str) -> HttpResponse:
    operation, result = _visible_operation(request, pk)
    return render(request, "web/operation.html", {
        "op": operation, "download": result.get("download") if operation.kind ==
        "volume.backup" and operation.status == Operation.SUCCEEDED else None})


@signed_in
def operation_state(request: HttpRequest, pk: str) -> JsonResponse:
    """The operation's live fields: its page reads them once its socket is open, so an
    operation that finished between the render and the subscription is not shown running."""
    operation, _ = _visible_operation(request, pk)
    return JsonResponse(operation_event(operation))


@signed_in
def backup_download(request: HttpRequest, pk: str) -> HttpResponseBase:
    """The archive a finished volume backup left for download (once)."""
    operation, result = _visible_operation(request, pk)
    if operation.kind != "volume.backup" or not result.get("download"):
        return HttpResponse("this operation has no backup to download\n", status=409,
                            content_type="text/plain")
    volume = Volume.objects.filter(pk=int(operation.target_id or 0)).first()
    if volume is None:
        raise PermissionDenied("you may not download this volume's backup")
    policy.authorize(request.user, "volume.create", volume, actor(request))  # 403 audited
    try:
        answer = transfers.fetch_from_host(operation.host_name, str(result["download"]),
                                           request.headers.get("Range"))
    except transfers.TransferFailed as exc:
        # the host cannot serve it now (its agent is down, or the backup expired): 503
        return HttpResponse(f"{exc}\n", status=503, content_type="text/plain")
    response = StreamingHttpResponse(transfers.chunks_of(answer), status=answer.status_code,
                                     content_type="application/zstd")
    for header in ("Content-Length", "Content-Range", "Accept-Ranges", "X-Berth-Sha256"):
        if header in answer.headers:
            response[header] = answer.headers[header]
    response["Content-Disposition"] = \
        f'attachment; filename="{result.get("filename") or "backup.tar.zst"}"'
    return response


@signed_in
def log_download(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The container's full on-disk log, streamed from its host (through Redis)."""
    container = get_visible(request, Container.objects.select_related("host"), "container.logs",
                            pk=pk)
    if container.host is None or container.host.current_status() != UP:
        return HttpResponse(f"the host of {container.name} is not up: its log cannot be read "
                            "now\n", status=503, content_type="text/plain")
    token = secrets.token_hex(16)
    transfers.push_request(container.host.name, {
        "kind": "log", "uid": str(container.uid), "token": token,
        "timestamps": request.GET.get("timestamps") == "1"})
    response = StreamingHttpResponse(transfers.download(token),
                                     content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{container.name}.log"'
    return response
