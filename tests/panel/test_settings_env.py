"""Strict environment parsers: a bad value fails at start-up naming the variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from panel.env import env_database, env_fernet_key, env_float, env_redis_url


def test_bad_numbers_and_urls_fail_naming_the_variable(monkeypatch):
    monkeypatch.setenv("BERTH_HOST_DOWN_AFTER", "soon")
    with pytest.raises(ImproperlyConfigured, match="BERTH_HOST_DOWN_AFTER"):
        env_float("BERTH_HOST_DOWN_AFTER", 15)
    monkeypatch.setenv("BERTH_HOST_DOWN_AFTER", "0.1")
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        env_float("BERTH_HOST_DOWN_AFTER", 15, minimum=1)
    monkeypatch.setenv("REDIS_URL", "http://x")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "nosuchdb://x/y")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env_database("DATABASE_URL", "sqlite:///x")


def test_database_url_selects_postgres(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5433/berth")
    config = env_database("DATABASE_URL", "sqlite:///x")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.example", 5433, "berth")


def test_secrets_key_is_generated_once_and_a_bad_one_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("BERTH_SECRETS_KEY", raising=False)
    key_file = tmp_path / "secrets.key"
    first = env_fernet_key("BERTH_SECRETS_KEY", key_file)
    assert env_fernet_key("BERTH_SECRETS_KEY", key_file) == first
    assert key_file.stat().st_mode & 0o777 == 0o600
    (tmp_path / "k").write_text("not-a-key")
    monkeypatch.setenv("BERTH_SECRETS_KEY_FILE", str(tmp_path / "k"))
    with pytest.raises(ImproperlyConfigured, match="Fernet"):
        env_fernet_key("BERTH_SECRETS_KEY", key_file)
