from __future__ import annotations

from django import forms


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(widget=forms.PasswordInput, max_length=4096)
    otp_token = forms.CharField(required=False, max_length=12, label="Authenticator code",
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code",
                                                              "inputmode": "numeric"}))
