"""Image references as docker spells them."""

from __future__ import annotations

import pytest

from runtime.errors import InvalidArgument
from runtime.images.reference import parse_reference
from runtime.images.store import normalise_tag

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", None, "busybox", "latest", None),
        ("busybox:1.36", None, "busybox", "1.36", None),
        ("library/busybox:1", None, "library/busybox", "1", None),
        ("team/app/web:v2", None, "team/app/web", "v2", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "a/b", "c", None),
        ("registry.example.com/app", "registry.example.com", "app", "latest", None),
        (f"app@{DIGEST}", None, "app", None, DIGEST),
        (f"app:1@{DIGEST}", None, "app", "1", DIGEST),
        ("my-app_x.y__z:TAG_1.0-rc", None, "my-app_x.y__z", "TAG_1.0-rc", None),
    ],
)
def test_parse_reference_splits_domain_path_tag_and_digest(text, domain, path, tag, digest):
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


def test_reference_prints_back_as_typed_with_default_tag():
    assert str(parse_reference("busybox")) == "busybox:latest"
    assert str(parse_reference("localhost:5000/app:1")) == "localhost:5000/app:1"
    assert str(parse_reference(f"app@{DIGEST}")) == f"app@{DIGEST}"


def test_docker_hub_single_names_live_under_library_on_the_registry():
    assert parse_reference("busybox").registry == "docker.io"
    assert parse_reference("busybox").remote_path == "library/busybox"
    assert parse_reference("team/app").remote_path == "team/app"
    assert parse_reference("localhost:5000/busybox").remote_path == "busybox"


def test_parse_reference_without_default_tag_leaves_tag_empty():
    assert parse_reference("busybox", default_tag=None).tag is None


@pytest.mark.parametrize(
    "text",
    ["", "Busybox", "app:", "app:-bad", "/app", "app/", "app//x", "a b", "app@sha256:short",
     "app:" + "x" * 129, "app@md5:" + "a" * 32],
)
def test_parse_reference_rejects_malformed_names(text):
    with pytest.raises(InvalidArgument, match="invalid image reference"):
        parse_reference(text)


def test_normalise_tag_adds_latest_and_refuses_digests():
    assert normalise_tag("busybox") == "busybox:latest"
    assert normalise_tag("localhost:5000/app:2") == "localhost:5000/app:2"
    with pytest.raises(InvalidArgument, match="digest"):
        normalise_tag(f"app@{DIGEST}")
