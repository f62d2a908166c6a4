"""Dashboard pages. Names start with "web-" and objects are `pk` (the permission matrix
tries every name)."""

from django.urls import include, path

from panel.web import views
from panel.web import views_audit as audit
from panel.web import views_backups as backups
from panel.web import views_deployments as deployments
from panel.web import views_resources as res

urlpatterns = [
    path("", views.overview, name="overview"),
    path("hosts/", views.hosts, name="web-hosts"),
    path("hosts/<str:pk>/", views.host_detail, name="web-host"),
    path("containers/", views.containers, name="web-containers"),
    path("containers/new/", views.container_create, name="web-container-create"),
    path("containers/bulk/", views.containers_bulk, name="web-containers-bulk"),
    path("containers/<int:pk>/", views.container_detail, name="web-container"),
    path("containers/<int:pk>/state/", views.container_state, name="web-container-state"),
    path("containers/<int:pk>/logs/download/", res.log_download, name="web-container-log"),
    *[path(f"containers/<int:pk>/{action}/", views.container_action, {"action": action},
           name=f"web-container-{action}")
      for action in ("start", "stop", "restart", "kill", "remove")],
    path("images/", res.images, name="web-images"),
    path("images/upload/", res.image_upload, name="web-image-upload"),
    path("volumes/", res.volumes, name="web-volumes"),
    *[path(f"volumes/<int:pk>/{action}/", res.volume_action, {"action": action},
           name=f"web-volume-{action}") for action in ("backup", "restore", "remove")],
    path("volumes/<int:pk>/backups/", backups.volume_backups, name="web-volume-backups"),
    *[path(f"backup-schedules/<int:pk>/{action}/", backups.schedule_action, {"action": action},
           name=f"web-backup-schedule-{action}") for action in ("run", "drill", "remove")],
    path("networks/", res.networks, name="web-networks"),
    path("networks/<int:pk>/remove/", res.network_remove, name="web-network-remove"),
    path("operations/", res.operations, name="web-operations"),
    path("operations/<str:pk>/", res.operation_detail, name="web-operation"),
    path("operations/<str:pk>/state/", res.operation_state, name="web-operation-state"),
    path("operations/<str:pk>/download/", res.backup_download, name="web-backup-download"),
    path("deployments/", deployments.deployments, name="web-deployments"),
    path("deployments/export/", deployments.deployments_export, name="web-deployments-export"),
    path("deployments/report/", deployments.deployments_report, name="web-deployments-report"),
    path("audit/", audit.audit_log, name="web-audit"),
    path("audit/export/", audit.audit_export, name="web-audit-export"),
    path("audit/verify/", audit.audit_verify, name="web-audit-verify"),
    path("audit/<int:pk>/", audit.audit_event, name="web-audit-event"),
    path("teams/", include("panel.web.team_urls")),
    path("account/", include("panel.web.account_urls")),
]
