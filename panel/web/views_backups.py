"""A volume's scheduled backups in the browser: the schedules with their last backup and last
restore drill, a form to add one (to a host directory or S3), and run now / drill / remove.
Every role of the volume's team sees them; admins and operators change them. The S3 secret key
is write-only (panel/workloads/backups.py keeps it encrypted)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from panel.access import policy
from panel.web.backup_forms import ScheduleForm
from panel.web.common import actor, get_visible, signed_in
from panel.workloads import backups
from panel.workloads.models import BackupSchedule, Volume
from panel.workloads.spec import ValidationFailed

ACTIONS = {"run": backups.run_backup, "drill": backups.run_drill}


def _page(request: HttpRequest, volume: Volume, form: ScheduleForm, status: int = 200,
          ) -> HttpResponse:
    schedules = policy.visible(request.user, BackupSchedule.objects.filter(volume=volume)
                               .select_related("host", "last_backup", "last_drill"))
    return render(request, "web/volume_backups.html", {
        "volume": volume, "form": form, "schedules": list(schedules),
        "can_change": policy.projects_for(request.user, "backupschedule.create").filter(
            pk=volume.project_id).exists() or policy.is_platform_admin(request.user)},
        status=status)


@signed_in
def volume_backups(request: HttpRequest, pk: int) -> HttpResponse:
    volume = get_visible(request, Volume.objects.select_related("project"), "volume.view",
                         pk=pk)
    hosts = sorted(volume.hosts.values_list("name", flat=True))
    if request.method != "POST":
        return _page(request, volume, ScheduleForm(hosts=hosts))
    policy.authorize_create(request.user, "backupschedule.create", volume.project,
                            actor(request))
    form = ScheduleForm(request.POST, hosts=hosts)
    if not form.is_valid():
        return _page(request, volume, form, status=400)
    try:
        backups.create_schedule(actor(request), volume, form.request_data(),
                                created_by=request.user.get_username())
    except ValidationFailed as exc:
        for field, errors in exc.errors.items():
            for error in errors:
                if field == "target":
                    form.show_target_error(error)
                else:
                    form.add_error(field if field in form.fields else None, error)
        return _page(request, volume, form, status=400)
    messages.success(request, f"backups of {volume.name} scheduled")
    return HttpResponseRedirect(reverse("web-volume-backups", args=[volume.pk]))


@signed_in
@require_POST
def schedule_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """run (back up now) and drill (restore the newest backup into a scratch volume and
    compare) answer the operation's page; remove goes back to the schedules."""
    if action not in (*ACTIONS, "remove"):
        raise Http404("no such action")
    schedule = get_visible(request, BackupSchedule.objects.select_related("volume__project"),
                           f"backupschedule.{action}", pk=pk)
    volume_page = reverse("web-volume-backups", args=[schedule.volume_id])
    if action == "remove":
        backups.remove_schedule(actor(request), schedule)
        messages.success(request, "schedule removed")
        return HttpResponseRedirect(volume_page)
    operation = ACTIONS[action](actor(request), schedule)
    return HttpResponseRedirect(reverse("web-operation", args=[operation.pk]))
