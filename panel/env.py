"""Strict parsers for settings read from the environment: a bad value fails loudly at start-up,
naming the variable. Every secret also has a `NAME_FILE` variant (for Docker/Kubernetes secrets)."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no, on/off"
    )


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_float(name: str, default: float, minimum: float | None = None) -> float:
    """A decimal number (seconds, ratios); fails on anything else or below `minimum`."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a finite number")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


def env_database(name: str, default: str) -> dict:
    """A database URL (`sqlite:///path`, `postgres://user:pass@host:port/db`) as Django's
    DATABASES entry; an unknown scheme or malformed URL fails naming the variable."""
    import dj_database_url

    url = env_str(name, default)
    try:
        config = dict(dj_database_url.parse(url))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a usable database URL ({exc}): use sqlite:///PATH or "
            "postgres://USER:PASSWORD@HOST:PORT/NAME"
        ) from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name}={url!r} names no database engine")
    return config


def env_redis_url(name: str, default: str) -> str:
    """A Redis URL (redis://, rediss:// or unix://)."""
    url = env_str(name, default)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"{name}={url!r} is not a Redis URL: use redis://HOST:PORT/DB"
        )
    return url


def env_fernet_key(name: str, key_file: Path) -> str:
    """A Fernet key from `name` / `name_FILE`, else the one kept in `key_file` (generated with
    mode 0600 on first use). A malformed key fails loudly: secrets could not be decrypted."""
    from cryptography.fernet import Fernet

    key = env_str(name, "")
    if not key:
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_bytes(Fernet.generate_key())
            key_file.chmod(0o600)
        key = key_file.read_text().strip()
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{name} is not a Fernet key: use 32 url-safe base64-encoded bytes "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')"
        ) from None
    return key
