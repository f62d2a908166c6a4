"""The "My account" pages, included at "account/" by panel/web/urls.py. Names start with
"web-account"; the only `pk` is web-account-token-revoke's, a token of the signed-in user."""

from django.urls import path

from panel.web import views_account as me

urlpatterns = [
    path("", me.overview, name="web-account"),
    path("password/", me.password, name="web-account-password"),
    path("totp/", me.totp, name="web-account-totp"),
    path("totp/confirm/", me.totp_confirm, name="web-account-totp-confirm"),
    path("totp/remove/", me.totp_remove, name="web-account-totp-remove"),
    path("recovery/", me.recovery, name="web-account-recovery"),
    path("tokens/", me.tokens, name="web-account-tokens"),
    path("tokens/<int:pk>/revoke/", me.token_revoke, name="web-account-token-revoke"),
    path("sessions/", me.sessions, name="web-account-sessions"),
]
