"""Secret env values at rest: a Fernet token of the JSON map, keyed by BERTH_SECRETS_KEY.

Only `Container.secret_names` is ever shown; values are decrypted solely to build the spec sent
to the container's own host."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    return Fernet(settings.BERTH_SECRETS_KEY.encode())


def encrypt_secrets(values: dict[str, str]) -> str:
    """The encrypted form of `values` ("" for no secrets)."""
    if not values:
        return ""
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_secrets(token: str) -> dict[str, str]:
    """The clear map; a token made with another key fails naming the setting to check."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ValueError("secret values cannot be decrypted: BERTH_SECRETS_KEY is not the key "
                         "they were stored with") from None
