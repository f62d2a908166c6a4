from django.urls import include, path

from panel import views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("healthz", views.healthz, name="healthz"),
    path("api/", include("panel.api.urls")),
    path("accounts/", include("panel.access.urls")),
]
