"""The forms of the "My account" pages. They only shape what a person types (and that the new
password was typed the same twice); panel/access/account.py and panel/access/services.py
validate it, and web.team_forms.apply_errors puts their errors back on these fields.

Each form has its own id prefix, so several share the account page with unique, labelled ids
while the posted names stay plain ("code", "name")."""

from __future__ import annotations

from typing import Any

from django import forms


class _Form(forms.Form):
    ids = "f"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.ids}-%s")
        super().__init__(*args, **kwargs)


def _secret(autocomplete: str) -> forms.CharField:
    # render_value=False: a refused form never echoes a password back into the page
    return forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": autocomplete}, render_value=False))


class PasswordForm(_Form):
    ids = "pw"
    current_password = _secret("current-password")
    new_password = _secret("new-password")
    new_password_again = _secret("new-password")
    new_password_again.label = "New password, again"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_password") and data.get("new_password_again") \
                and data["new_password"] != data["new_password_again"]:
            self.add_error("new_password_again", "does not match the new password")
        return data


class TotpConfirmForm(_Form):
    ids = "totp"
    code = forms.CharField(max_length=12, label="Code from the app",
                           help_text="the 6 digits your authenticator app shows now",
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code",
                                                         "inputmode": "numeric"}))


class TokenForm(_Form):
    ids = "token"
    name = forms.CharField(max_length=64, help_text='a label, e.g. "ci deploys"')
    read_only = forms.BooleanField(required=False, label="Read-only",
                                   help_text="may look but not change anything")
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=3650,
                                         label="Expires after (days)",
                                         help_text="empty: never")
