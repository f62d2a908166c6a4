"""Pull and push against Debian's real `docker-registry` (distribution 2.8) on 127.0.0.1:
anonymous, htpasswd basic auth, and the bearer-token flow; interop with skopeo both ways."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_server import RegistryServer, TokenServer, write_htpasswd

from runtime.errors import DigestMismatch, NotFound, RegistryError
from runtime.host import Host
from runtime.images.builder import image_from_layers, tar_directory
from runtime.images.registry import pull, push
from runtime.images.store import MEDIA_OCI_INDEX, Image, ImageStore

USERS = {"alice": "correct horse"}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="berth-registry-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _serve(workdir: Path, name: str, auth: tuple[str, object] | None = None
           ) -> Iterator[RegistryServer]:
    server = RegistryServer(workdir / name, auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    """An anonymous registry (no auth)."""
    yield from _serve(workdir, "open")


@pytest.fixture(scope="module")
def basic_registry(workdir: Path) -> Iterator[RegistryServer]:
    """A registry with htpasswd (bcrypt) basic auth and one user, alice."""
    (workdir / "basic").mkdir()
    write_htpasswd(workdir / "basic" / "htpasswd", USERS)
    yield from _serve(workdir, "basic-registry", ("htpasswd", workdir / "basic" / "htpasswd"))


@pytest.fixture(scope="module")
def token_server(workdir: Path) -> Iterator[TokenServer]:
    (workdir / "token").mkdir()
    server = TokenServer(workdir / "token", USERS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RegistryServer]:
    """A registry using token auth: the bearer flow against `token_server`."""
    yield from _serve(workdir, "token-registry", ("token", token_server))


@pytest.fixture
def scratch(workdir: Path) -> Iterator[Path]:
    """A per-test scratch directory (removed with the module's work directory)."""
    path = workdir / f"scratch-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def other_store() -> Iterator[ImageStore]:
    """A second fresh runtime root, as on another host."""
    from berth_testenv import TEST_ROOT_PARENT

    root = TEST_ROOT_PARENT / uuid.uuid4().hex[:12]
    root.mkdir(parents=True)
    yield ImageStore(root)
    shutil.rmtree(root, ignore_errors=True)
    try:
        TEST_ROOT_PARENT.rmdir()
    except OSError:
        pass


def _tagged(host: Host, registry: RegistryServer, name: str) -> str:
    ref = f"{registry.address}/{name}:1.0"
    host.images.tag("busybox:latest", ref)
    return ref


def _small_image(store: ImageStore, text: str, tag: str, arch: str = "amd64") -> Image:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "hello.txt").write_text(text)
        layer = tar_directory(Path(tmp))
    image = image_from_layers(store, [layer], {"Cmd": ["cat", "/hello.txt"]}, tags=[tag])
    if arch == "amd64":
        return image
    # Rewrite the config for another architecture (the builder always writes amd64).
    config = dict(image.config, architecture=arch)
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = store.put_blob_bytes(config_bytes)
    manifest = json.loads(store.read_blob(image.manifest_digest))
    manifest["config"].update(digest=config_digest, size=len(config_bytes))
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    return store.add_image(manifest, store.put_blob_bytes(manifest_bytes), [tag])


def _stored_blobs(store: ImageStore) -> set[str]:
    return {p.name for p in store.blob_dir.iterdir()} if store.blob_dir.is_dir() else set()


# -- anonymous ---------------------------------------------------------------------------------

def test_push_then_pull_into_fresh_root_gives_same_image(host: Host, registry: RegistryServer,
                                                          other_store: ImageStore) -> None:
    ref = _tagged(host, registry, "busybox")
    pushed: list[dict[str, Any]] = []
    digest = push(host.images, ref, insecure=True, progress=pushed.append)
    local = host.images.get(ref)
    assert digest == local.manifest_digest
    assert {e["status"] for e in pushed} >= {"resolved", "uploading", "complete", "done"}

    pulled_events: list[dict[str, Any]] = []
    image = pull(other_store, ref, insecure=True, progress=pulled_events.append)
    assert image.id == local.id
    assert image.manifest_digest == digest
    assert image.tags == [ref]
    assert other_store.get(ref).id == local.id
    assert (image.layer_dirs()[0] / "bin" / "busybox").is_file()
    downloaded = [e for e in pulled_events if e["status"] == "complete"]
    assert {e["kind"] for e in downloaded} == {"config", "layer"}

    # A second push finds every blob in the registry; a second pull finds them locally.
    again: list[dict[str, Any]] = []
    assert push(host.images, ref, insecure=True, progress=again.append) == digest
    assert [e["status"] for e in again if "kind" in e] == ["exists", "exists"]
    again.clear()
    pull(other_store, ref, insecure=True, progress=again.append)
    assert [e["status"] for e in again if "kind" in e] == ["exists", "exists"]


def test_pull_by_digest_into_fresh_root(host: Host, registry: RegistryServer,
                                        other_store: ImageStore) -> None:
    ref = _tagged(host, registry, "by-digest")
    digest = push(host.images, ref, insecure=True)
    image = pull(other_store, f"{registry.address}/by-digest@{digest}", insecure=True)
    assert image.manifest_digest == digest
    assert image.tags == []


def test_a_digest_reference_is_that_digest_not_what_the_tag_holds(
        host: Host, registry: RegistryServer, other_store: ImageStore) -> None:
    ref = f"{registry.address}/moving:1"
    _small_image(host.images, "v1\n", ref)
    first = push(host.images, ref, insecure=True)
    pull(other_store, ref, insecure=True)
    _small_image(host.images, "v2\n", ref)
    second = push(host.images, ref, insecure=True)
    # the tag still names v1 here: NAME:TAG@<v2> is not v1, and pulling it gives v2
    assert other_store.get(f"{ref}@{first}").manifest_digest == first
    with pytest.raises(NotFound):
        other_store.get(f"{ref}@{second}")
    moved = pull(other_store, f"{ref}@{second}", insecure=True)
    assert moved.manifest_digest == second and other_store.get(ref).id == moved.id


def test_pull_missing_tag_is_not_found(host: Host, registry: RegistryServer,
                                       other_store: ImageStore) -> None:
    push(host.images, _tagged(host, registry, "has-tags"), insecure=True)
    with pytest.raises(NotFound, match=r"no such repository or tag has-tags:nope on 127\.0\.0\.1"):
        pull(other_store, f"{registry.address}/has-tags:nope", insecure=True)
    with pytest.raises(NotFound, match="no such repository or tag no-such-repo:latest"):
        pull(other_store, f"{registry.address}/no-such-repo:latest", insecure=True)
    assert other_store.list() == []


def test_pull_of_corrupt_layer_leaves_nothing_behind(host: Host, registry: RegistryServer,
                                                     other_store: ImageStore) -> None:
    ref = f"{registry.address}/corrupt:1"
    image = _small_image(host.images, "content that the registry will damage\n", ref)
    push(host.images, ref, insecure=True)
    blob = registry.blob_data_path(image.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF
    blob.write_bytes(bytes(data))

    with pytest.raises(DigestMismatch, match=image.layers[0].digest):
        pull(other_store, ref, insecure=True)
    assert other_store.list() == []
    assert _stored_blobs(other_store) == set()  # the config it had fetched is gone again
    assert not any(other_store.layer_root.glob("*")) if other_store.layer_root.exists() else True


def test_unreachable_registry_names_the_url(host: Host, other_store: ImageStore) -> None:
    from registry_server import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError, match=rf"http://{address}/v2/: connection refused"):
        pull(other_store, f"{address}/busybox", insecure=True)


def test_plain_http_registry_needs_insecure(registry: RegistryServer,
                                            other_store: ImageStore) -> None:
    with pytest.raises(RegistryError, match=rf"https://{registry.address}/v2/.*--insecure"):
        pull(other_store, f"{registry.address}/busybox:1.0")


# -- basic auth ---------------------------------------------------------------------------------

def test_basic_auth_login_saves_credentials_for_push_and_pull(
        host: Host, basic_registry: RegistryServer, cli, other_store: ImageStore) -> None:
    ref = _tagged(host, basic_registry, "private")
    with pytest.raises(RegistryError, match=rf"requires a login.*login {basic_registry.address}"):
        push(host.images, ref, insecure=True)

    result = cli("login", basic_registry.address, "-u", "alice", "--password-stdin",
                 "--insecure", input=USERS["alice"] + "\n")
    assert "Login Succeeded" in result.stdout
    auth_file = host.root / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert basic_registry.address in json.loads(auth_file.read_text())["auths"]

    digest = push(host.images, ref, insecure=True)  # with the saved login
    image = pull(other_store, ref, insecure=True, username="alice", password=USERS["alice"])
    assert image.manifest_digest == digest

    assert "Removing login credentials" in cli("logout", basic_registry.address).stdout
    assert json.loads(auth_file.read_text())["auths"] == {}
    assert "Not logged in" in cli("logout", basic_registry.address).stdout


def test_basic_auth_wrong_password_is_a_clear_login_failure(
        host: Host, basic_registry: RegistryServer, cli, other_store: ImageStore) -> None:
    result = cli("login", basic_registry.address, "-u", "alice", "-p", "wrong", "--insecure",
                 check=False)
    assert result.returncode != 0
    assert f"login failed for {basic_registry.address}" in result.stderr
    assert not (host.root / "auth.json").exists()
    with pytest.raises(RegistryError, match=rf"login failed for {basic_registry.address}: .*alice"):
        pull(other_store, f"{basic_registry.address}/private:1.0", insecure=True,
             username="alice", password="wrong")


# -- bearer token ------------------------------------------------------------------------------

def test_bearer_token_flow_push_and_pull(host: Host, token_registry: RegistryServer,
                                         token_server: TokenServer,
                                         other_store: ImageStore) -> None:
    ref = _tagged(host, token_registry, "team/app")
    digest = push(host.images, ref, insecure=True, username="alice", password=USERS["alice"])
    image = pull(other_store, ref, insecure=True, username="alice", password=USERS["alice"])
    assert image.id == host.images.get(ref).id
    assert image.manifest_digest == digest
    scopes = {s for r in token_server.requests if r["ok"] for s in r["scopes"]}  # type: ignore
    assert "repository:team/app:pull,push" in scopes
    assert "repository:team/app:pull" in scopes


def test_bearer_token_flow_anonymous_pull_when_the_token_server_allows_it(
        host: Host, token_registry: RegistryServer, token_server: TokenServer,
        other_store: ImageStore) -> None:
    ref = _tagged(host, token_registry, "public/app")
    push(host.images, ref, insecure=True, username="alice", password=USERS["alice"])
    token_server.anonymous_actions = {"pull"}
    try:
        image = pull(other_store, ref, insecure=True)
    finally:
        token_server.anonymous_actions = set()
    assert image.id == host.images.get(ref).id
    anonymous = [r for r in token_server.requests if r["user"] is None and r["scopes"]]
    assert anonymous and anonymous[-1]["scopes"] == ["repository:public/app:pull"]


def test_bearer_token_flow_rejects_wrong_password_and_anonymous(
        token_registry: RegistryServer, other_store: ImageStore, cli) -> None:
    ref = f"{token_registry.address}/team/app:1.0"
    with pytest.raises(RegistryError, match=rf"login failed for {token_registry.address}: "
                                            r"the token server .* refused .*'alice'"):
        pull(other_store, ref, insecure=True, username="alice", password="wrong")
    # Anonymous callers get a token without access: the registry then asks for a login.
    with pytest.raises(RegistryError, match="requires a login"):
        pull(other_store, ref, insecure=True)
    result = cli("login", token_registry.address, "-u", "alice", "-p", "wrong", "--insecure",
                 check=False)
    assert f"login failed for {token_registry.address}" in result.stderr
    assert "Login Succeeded" in cli("login", token_registry.address, "-u", "alice", "-p",
                                    USERS["alice"], "--insecure").stdout
    assert other_store.list() == []


# -- interop with skopeo --------------------------------------------------------------------------

def _skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result.stdout


def _oci_archive(store: ImageStore, images: list[tuple[Image, dict[str, str] | None]],
                 target: Path, tag: str) -> None:
    """Write an OCI archive of `images` (one manifest, or an index with platforms)."""
    layout = target.with_suffix(".d")
    (layout / "blobs" / "sha256").mkdir(parents=True)
    manifests = []
    for image, platform in images:
        blobs = [image.manifest_digest, image.id, *(layer.digest for layer in image.layers)]
        for digest in blobs:
            shutil.copy(store.blob_path(digest), layout / "blobs" / "sha256" / digest[7:])
        entry: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest,
            "size": store.blob_path(image.manifest_digest).stat().st_size,
        }
        if platform:
            entry["platform"] = platform
        manifests.append(entry)
    if len(manifests) > 1:
        nested = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                             "manifests": manifests}).encode()
        digest = store.put_blob_bytes(nested)
        shutil.copy(store.blob_path(digest), layout / "blobs" / "sha256" / digest[7:])
        manifests = [{"mediaType": MEDIA_OCI_INDEX, "digest": digest, "size": len(nested)}]
    manifests[0]["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    with tarfile.open(target, "w") as archive:
        for entry_path in sorted(layout.rglob("*")):
            archive.add(entry_path, arcname=entry_path.relative_to(layout).as_posix(),
                        recursive=False)
    shutil.rmtree(layout)


def test_skopeo_reads_an_image_pushed_by_berth(host: Host, registry: RegistryServer,
                                               scratch: Path) -> None:
    ref = _tagged(host, registry, "for-skopeo")
    digest = push(host.images, ref, insecure=True)
    info = json.loads(_skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == digest
    assert info["Layers"] == [layer.digest for layer in host.images.get(ref).layers]
    # skopeo fetches every blob (and recompresses the layer for its OCI layout; the config, and so
    # the image id, stays the same).
    _skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{scratch / 'copy'}:x")
    assert (scratch / "copy" / "blobs" / "sha256" / host.images.get(ref).id[7:]).is_file()


def test_pull_docker_v2_gzip_image_pushed_by_skopeo(host: Host, registry: RegistryServer,
                                                    other_store: ImageStore,
                                                    scratch: Path) -> None:
    local = host.images.get("busybox:latest")
    archive = scratch / "busybox.tar"
    _oci_archive(host.images, [(local, None)], archive, "latest")
    ref = f"{registry.address}/skopeo-v2s2:latest"
    _skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", "--dest-compress",
            f"oci-archive:{archive}", f"docker://{ref}")

    image = pull(other_store, ref, insecure=True)
    manifest = json.loads(other_store.read_blob(image.manifest_digest))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["layers"][0]["mediaType"].endswith("diff.tar.gzip")
    assert [layer.diff_id for layer in image.layers] == [layer.diff_id for layer in local.layers]
    assert (image.layer_dirs()[0] / "bin" / "busybox").is_file()


@pytest.mark.parametrize("list_format", ["oci", "v2s2"])
def test_pull_picks_linux_amd64_from_a_multi_platform_index(
        host: Host, registry: RegistryServer, other_store: ImageStore, scratch: Path,
        list_format: str) -> None:
    amd64 = host.images.get("busybox:latest")
    arm64 = _small_image(host.images, "not for this host\n", "arm-only:latest", arch="arm64")
    archive = scratch / "multi.tar"
    _oci_archive(host.images, [(arm64, {"os": "linux", "architecture": "arm64"}),
                               (amd64, {"os": "linux", "architecture": "amd64"})],
                 archive, "latest")
    ref = f"{registry.address}/multi-{list_format}:latest"
    _skopeo("copy", "--dest-tls-verify=false", "--all", "--format", list_format,
            f"oci-archive:{archive}", f"docker://{ref}")
    raw = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    expected_list = {"oci": MEDIA_OCI_INDEX,
                     "v2s2": "application/vnd.docker.distribution.manifest.list.v2+json"}
    assert raw["mediaType"] == expected_list[list_format]

    image = pull(other_store, ref, insecure=True)
    assert [layer.diff_id for layer in image.layers] == [layer.diff_id for layer in amd64.layers]
    assert image.config["architecture"] == "amd64"
    # NAME@<index digest>, what the registry reports for the tag, finds the pulled image
    index_digest = "sha256:" + hashlib.sha256(
        _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").encode()
    ).hexdigest()
    assert other_store.get(f"{ref}@{index_digest}").id == image.id
