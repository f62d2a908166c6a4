from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from panel.api import (  # noqa: F401 (schema: auth)
    access_views,
    audit_views,
    backup_views,
    schema,
    views,
)

router = DefaultRouter()
router.register("hosts", views.HostViewSet, basename="host")
router.register("images", views.ImageViewSet, basename="image")
router.register("containers", views.ContainerViewSet, basename="container")
router.register("volumes", views.VolumeViewSet, basename="volume")
router.register("networks", views.NetworkViewSet, basename="network")
router.register("operations", views.OperationViewSet, basename="operation")
router.register("backup-schedules", backup_views.BackupScheduleViewSet,
                basename="backupschedule")
router.register("teams", access_views.TeamViewSet, basename="team")
router.register("projects", access_views.ProjectViewSet, basename="project")
router.register("users", access_views.UserViewSet, basename="user")
router.register("tokens", access_views.TokenViewSet, basename="apitoken")
router.register("audit", audit_views.AuditEventViewSet, basename="auditevent")

urlpatterns = [
    path("v1/me/", access_views.MeView.as_view(), name="me"),
    path("v1/me/totp/", access_views.TotpView.as_view(), name="me-totp"),
    path("v1/me/totp/confirm/", access_views.TotpConfirmView.as_view(), name="me-totp-confirm"),
    path("v1/", include("panel.stacks.api_urls")),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's script as a file: the CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
