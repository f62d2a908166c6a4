"""Dashboard pages of stacks (included under /stacks/ by panel/urls.py)."""

from django.urls import path

from panel.stacks import views

urlpatterns = [
    path("", views.stack_list, name="web-stacks"),
    path("new/", views.stack_new, name="web-stack-new"),
    path("templates/", views.catalogue, name="web-stack-catalogue"),
    path("templates/<str:key>/", views.template_form, name="web-stack-template"),
    path("<int:pk>/", views.stack_detail, name="web-stack"),
    path("<int:pk>/diff/", views.stack_diff, name="web-stack-diff"),
    path("<int:pk>/<str:action>/", views.stack_action, name="web-stack-action"),
]
