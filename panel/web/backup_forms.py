"""The form that schedules a volume's backups: the API's request shape (panel/workloads/backups.py
validates it), with the target's keys as separate fields and the S3 secret key write-only."""

from __future__ import annotations

from typing import Any

from django import forms

from panel.workloads.backups import MAX_INTERVAL_HOURS, TARGET_KEYS

# The target's keys and the form fields holding them ("prefix" is taken: a Form's own prefix).
FIELD_OF_KEY = {"path": "path", "bucket": "bucket", "prefix": "key_prefix",
                "endpoint_url": "endpoint_url", "access_key": "access_key",
                "secret_key": "secret_key", "region": "region"}


class ScheduleForm(forms.Form):
    host = forms.ChoiceField(help_text="the host holding the volume's data")
    interval_hours = forms.IntegerField(min_value=1, max_value=MAX_INTERVAL_HOURS, initial=24,
                                        label="Every (hours)")
    keep_daily = forms.IntegerField(min_value=0, max_value=3650, initial=7,
                                    help_text="the newest backup of each of the last N days")
    keep_weekly = forms.IntegerField(min_value=0, max_value=520, initial=4,
                                     help_text="the newest backup of each of the last N weeks")
    kind = forms.ChoiceField(choices=[("directory", "a directory on the host"),
                                      ("s3", "S3-compatible storage")], label="Back up to",
                             initial="directory")
    path = forms.CharField(required=False, help_text="absolute, e.g. /srv/backups")
    bucket = forms.CharField(required=False)
    key_prefix = forms.CharField(required=False, label="Prefix",
                                 help_text="e.g. shop/: backups go under it")
    endpoint_url = forms.CharField(required=False, label="Endpoint URL",
                                   help_text="empty: AWS; e.g. https://s3.example.net")
    access_key = forms.CharField(required=False)
    secret_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                 help_text="stored encrypted; never shown again")
    region = forms.CharField(required=False)

    def __init__(self, *args: Any, hosts: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host = self.fields["host"]
        assert isinstance(host, forms.ChoiceField)
        host.choices = [(name, name) for name in hosts]

    def request_data(self) -> dict[str, Any]:
        """The cleaned form as `create_schedule` takes it (empty target keys left out)."""
        data = self.cleaned_data
        kind = data["kind"]
        target = {"kind": kind, **{key: data[FIELD_OF_KEY[key]] for key in TARGET_KEYS[kind]
                                   if key != "kind" and data.get(FIELD_OF_KEY[key])}}
        return {"host": data["host"], "interval_hours": data["interval_hours"],
                "keep_daily": data["keep_daily"], "keep_weekly": data["keep_weekly"],
                "target": target}

    def show_target_error(self, error: str) -> None:
        """A target error beside the field it names ("bucket is required"), else on top."""
        self.add_error(FIELD_OF_KEY.get(error.split(" ", 1)[0]), error)
