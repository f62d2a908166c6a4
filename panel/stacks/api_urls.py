"""The stacks part of `/api/v1/` (included by panel/api/urls.py)."""

from rest_framework.routers import SimpleRouter

from panel.stacks import api

router = SimpleRouter()
router.trailing_slash = "/?"  # `…/deploy` and `…/deploy/` alike
router.register("stacks", api.StackViewSet, basename="stack")
router.register("stack-templates", api.StackTemplateViewSet, basename="stacktemplate")

urlpatterns = router.urls
