from django.urls import include, path

from panel import views

urlpatterns = [
    path("", include("panel.web.urls")),  # the dashboard (its overview is "/")
    path("healthz", views.healthz, name="healthz"),
    path("stacks/", include("panel.stacks.urls")),
    path("api/", include("panel.api.urls")),
    path("accounts/", include("panel.access.urls")),
    path("docker/", include("panel.dockerapi.urls")),  # the docker CLI and docker-py
]
