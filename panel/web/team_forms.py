"""The forms of the team pages. They only shape what a person types; the services of
panel/access validate it (their errors are put back on these fields by `apply_errors`).

Each form has its own id prefix, so several share one page with unique, labelled ids while the
posted field names stay plain ("role", "username")."""

from __future__ import annotations

from typing import Any

from django import forms

from panel.access import team_tokens
from panel.access.invites import MAX_DAYS
from panel.access.models import NAME_HELP, Membership
from panel.workloads.spec import ValidationFailed


class _Form(forms.Form):
    ids = "f"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.ids}-%s")
        super().__init__(*args, **kwargs)


def apply_errors(form: forms.Form, exc: ValidationFailed) -> None:
    """Show a service's field errors on `form` (unknown fields as form errors, named)."""
    for field, errors in exc.errors.items():
        for error in errors:
            if field in form.fields:
                form.add_error(field, error)
            else:
                form.add_error(None, f"{field}: {error}")


class TeamForm(_Form):
    ids = "team"
    name = forms.CharField(max_length=64, help_text=NAME_HELP)
    description = forms.CharField(max_length=255, required=False)
    require_2fa = forms.BooleanField(required=False, label="Require two-factor sign-in")


class SettingsForm(_Form):
    ids = "settings"
    description = forms.CharField(max_length=255, required=False)
    require_2fa = forms.BooleanField(
        required=False, label="Require two-factor sign-in",
        help_text="members without an authenticator app must enrol one at their next sign-in")


class MemberForm(_Form):
    ids = "member"
    username = forms.CharField(max_length=150, help_text="an existing user's name")
    role = forms.ChoiceField(choices=Membership.ROLE_CHOICES, initial="viewer")


class InviteForm(_Form):
    ids = "invite"
    role = forms.ChoiceField(choices=Membership.ROLE_CHOICES, initial="viewer")
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, initial=7,
                              label="Valid for (days)")


class ProjectForm(_Form):
    ids = "project"
    name = forms.CharField(max_length=64, help_text=NAME_HELP)
    description = forms.CharField(max_length=255, required=False)


class TeamTokenForm(_Form):
    ids = "team-token"
    name = forms.CharField(max_length=64, help_text='a label, e.g. "ci deploys"')
    role = forms.ChoiceField(choices=Membership.ROLE_CHOICES, initial="viewer",
                             help_text="what the token may do in this team")
    read_only = forms.BooleanField(required=False, label="Read-only",
                                   help_text="may look but not change anything")
    expires_in_days = forms.IntegerField(required=False, min_value=1,
                                         max_value=team_tokens.MAX_DAYS,
                                         label="Expires after (days)", help_text="empty: never")
