from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from panel.api import views

router = DefaultRouter()
router.register("hosts", views.HostViewSet, basename="host")
router.register("images", views.ImageViewSet, basename="image")
router.register("containers", views.ContainerViewSet, basename="container")
router.register("volumes", views.VolumeViewSet, basename="volume")
router.register("networks", views.NetworkViewSet, basename="network")
router.register("operations", views.OperationViewSet, basename="operation")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
