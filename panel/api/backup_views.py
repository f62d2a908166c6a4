"""`/api/v1/backup-schedules/`: scheduled backups of volumes (panel/workloads/backups.py).

    POST   {volume, host, interval_hours, keep_daily, keep_weekly, target}   201
    GET    list / one (the S3 secret key is never shown: `target.secret_key_set`)
    DELETE one
    POST   one/run/   back up now          202 {operation}
    POST   one/drill/ restore drill now    202 {operation}
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from panel.access import policy
from panel.api.permissions import Scoped, find
from panel.workloads import backups
from panel.workloads.models import BackupSchedule, Volume
from panel.workloads.spec import ValidationFailed


class BackupScheduleViewSet(Scoped, viewsets.ViewSet):
    """Scheduled volume backups with retention, to a host directory or S3."""

    resource = "backupschedule"
    name_field = "pk"
    verbs = {"run": "run", "drill": "drill"}

    def base_queryset(self) -> QuerySet:
        return BackupSchedule.objects.select_related(
            "volume__project", "host", "last_backup", "last_drill")

    def list(self, request: Request) -> Response:
        return Response([backups.schedule_data(s) for s in self.get_queryset()])

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(backups.schedule_data(self.get_object()))

    def create(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            raise ValidationFailed({"non_field_errors": ["the request body must be a JSON "
                                                         "object"]})
        volumes = policy.visible(request.user, Volume.objects.select_related("project"),
                                 "volume.view", self.token())
        value = str(data.get("volume") or "")
        volume = find(volumes, value)
        if volume is None:
            hidden = find(Volume.objects.all(), value)
            if hidden is not None:  # another team's: as if it did not exist, audited
                policy.deny_missing(self.actor(), "backupschedule.create", hidden)
                raise Http404(f"no volume {value!r}")
            raise ValidationFailed({"volume": [f"unknown volume {value!r}: name one of your "
                                               "volumes"]})
        policy.authorize_create(request.user, "backupschedule.create", volume.project,
                                self.actor(), self.token())
        schedule = backups.create_schedule(self.actor(), volume, data,
                                           created_by=request.user.get_username())
        return Response(backups.schedule_data(schedule), status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        backups.remove_schedule(self.actor(), self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        operation = backups.run_backup(self.actor(), self.get_object())
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def drill(self, request: Request, pk: str | None = None) -> Response:
        operation = backups.run_drill(self.actor(), self.get_object())
        return Response({"operation": str(operation.pk)}, status=status.HTTP_202_ACCEPTED)
