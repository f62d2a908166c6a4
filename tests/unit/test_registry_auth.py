"""Registry client pieces that need no registry: challenges, saved logins, platform choice."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from runtime.errors import ImageError, InvalidArgument, NotFound
from runtime.images import registry
from runtime.images.auth import (
    Credentials,
    CredentialStore,
    normalise_registry,
    parse_challenge,
)


def test_parse_challenge_handles_quoted_commas_and_escapes() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push",error="insufficient_scope",note="say \\"hi\\""'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "reg.example",
                      "scope": "repository:a/b:pull,push", "error": "insufficient_scope",
                      "note": 'say "hi"'}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_normalise_registry_strips_scheme_and_maps_docker_hub() -> None:
    assert normalise_registry("https://127.0.0.1:5000/") == "127.0.0.1:5000"
    assert normalise_registry("Registry.Example.com") == "registry.example.com"
    assert normalise_registry("index.docker.io") == "docker.io"
    with pytest.raises(InvalidArgument, match="expected HOST"):
        normalise_registry("   ")


def test_credential_store_round_trip_is_private(tmp_path: Path) -> None:
    saved = CredentialStore(tmp_path)
    assert saved.get("127.0.0.1:5000") is None
    saved.save("http://127.0.0.1:5000", Credentials("alice", "pa:ss word"))
    assert stat.S_IMODE((tmp_path / "auth.json").stat().st_mode) == 0o600
    assert saved.get("127.0.0.1:5000") == Credentials("alice", "pa:ss word")
    assert saved.remove("127.0.0.1:5000") is True
    assert saved.remove("127.0.0.1:5000") is False
    assert saved.get("127.0.0.1:5000") is None


def test_corrupt_credential_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("{not json")
    with pytest.raises(Exception, match="auth.json is not valid JSON"):
        CredentialStore(tmp_path).get("r.example")


def test_index_choice_takes_linux_on_this_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry.platform, "machine", lambda: "x86_64")
    digest_arm, digest_amd = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    index = {"manifests": [
        {"digest": digest_arm, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "c" * 64, "platform": {"os": "windows", "architecture": "amd64"}},
        {"digest": digest_amd, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    assert registry._choose_platform(index, "pull x") == digest_amd
    monkeypatch.setattr(registry.platform, "machine", lambda: "s390x")
    with pytest.raises(NotFound, match="no variant for linux/s390x; it offers linux/arm64, "
                                       "windows/amd64, linux/amd64"):
        registry._choose_platform(index, "pull x")


def test_manifest_with_foreign_layer_media_type_is_refused() -> None:
    manifest = {"config": {"digest": "sha256:" + "a" * 64, "size": 2},
                "layers": [{"digest": "sha256:" + "b" * 64, "size": 3,
                            "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip"}]}
    with pytest.raises(ImageError, match="helm.chart.*berth unpacks"):
        registry._check_manifest(manifest, "pull x")


def test_password_without_username_is_refused(tmp_path: Path) -> None:
    from runtime.images.store import ImageStore

    with pytest.raises(InvalidArgument, match="password was given without a username"):
        registry.client_for(ImageStore(tmp_path), "r.example", password="secret")
