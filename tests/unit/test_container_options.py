"""Parsers behind the `run` flags: they accept docker's forms and name the flag when refusing."""

from __future__ import annotations

import signal

import pytest

from runtime.containers import options as opts
from runtime.errors import InvalidArgument


@pytest.mark.parametrize("text,expected", [
    ("256m", 256 * 1024**2), ("1g", 1024**3), ("6291456", 6 * 1024**2), ("512MB", 512 * 1024**2),
    (None, 0), ("0", 0),
])
def test_memory_accepts_docker_units(text, expected):
    assert opts.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "12q", "1k", "-5m"])
def test_memory_refuses_malformed_or_tiny_values(text):
    with pytest.raises(InvalidArgument, match="--memory"):
        opts.parse_memory(text)


def test_cpus_become_nano_cpus_and_are_bounded():
    assert opts.parse_cpus("0.5") == 500_000_000
    with pytest.raises(InvalidArgument, match="--cpus"):
        opts.parse_cpus("10000")
    with pytest.raises(InvalidArgument, match="--cpus"):
        opts.parse_cpus("half")


@pytest.mark.parametrize("text,expected", [
    ("no", {"Name": "no", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
])
def test_restart_policies_parse_like_docker(text, expected):
    assert opts.parse_restart(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x"])
def test_restart_refuses_unknown_policies(text):
    with pytest.raises(InvalidArgument, match="--restart"):
        opts.parse_restart(text)


def test_durations_parse_go_style_and_plain_seconds():
    assert opts.parse_duration("1m30s", "--health-interval") == 90 * 10**9
    assert opts.parse_duration("500ms", "--health-timeout") == 500 * 10**6
    assert opts.parse_duration("2", "--health-interval") == 2 * 10**9
    with pytest.raises(InvalidArgument, match="--health-interval"):
        opts.parse_duration("soon", "--health-interval")


def test_signals_by_name_or_number():
    assert opts.parse_signal("TERM") == signal.SIGTERM
    assert opts.parse_signal("SIGUSR1") == signal.SIGUSR1
    assert opts.parse_signal("9") == 9
    with pytest.raises(InvalidArgument, match="signal"):
        opts.parse_signal("SIGNOPE")


def test_volume_specs_distinguish_named_bind_and_anonymous():
    named = opts.parse_volume("data:/var/lib/data:ro")
    assert (named.source, named.destination, named.read_only, named.is_bind) == (
        "data", "/var/lib/data", True, False)
    bind = opts.parse_volume("/srv/www:/usr/share/www")
    assert bind.is_bind and not bind.read_only
    assert opts.parse_volume("/cache").source == ""


def test_nocopy_is_accepted_for_named_volumes_only():
    spec = opts.parse_volume("data:/srv:ro,nocopy")
    assert (spec.read_only, spec.no_copy) == (True, True)
    assert opts.parse_volume("data:/srv").no_copy is False
    with pytest.raises(InvalidArgument, match="named volumes only"):
        opts.parse_volume("/host:/srv:nocopy")


@pytest.mark.parametrize("spec", ["data:relative", "data:/x:rx", "data:/", "bad name:/x",
                                  "data:/a/../b", "data:/x:ro,rw"])
def test_volume_specs_refuse_unsafe_or_malformed_entries(spec):
    with pytest.raises(InvalidArgument, match="-v"):
        opts.parse_volume(spec)


def test_env_overrides_replace_image_values_in_place(monkeypatch, tmp_path):
    monkeypatch.setenv("FROM_HOST", "yes")
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\n\nA=from-file\nFROM_HOST\n")
    overrides = opts.read_env_file(str(env_file)) + [opts.parse_env_entry("B=2")]
    merged = opts.merge_env(["PATH=/bin", "A=image"], overrides)
    assert merged == ["PATH=/bin", "A=from-file", "FROM_HOST=yes", "B=2"]


def test_env_file_missing_names_the_file():
    with pytest.raises(InvalidArgument, match="--env-file"):
        opts.read_env_file("/nonexistent/app.env")


def test_container_names_follow_docker_rules():
    assert opts.validate_name("/web-1.a_b") == "web-1.a_b"
    with pytest.raises(InvalidArgument, match="container name"):
        opts.validate_name("-bad")
