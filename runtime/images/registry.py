"""Registry client: pull and push images over the OCI distribution API v2.

    pull(store, "127.0.0.1:5000/app:1.0", insecure=True)   # -> Image, registered in the store
    push(store, "127.0.0.1:5000/app:1.0", insecure=True)   # -> "sha256:…" manifest digest

HTTPS is used unless `insecure`, which also allows plain HTTP (tried after HTTPS, without
certificate checks, as docker does for an insecure registry). Authentication is anonymous, HTTP
basic, or the bearer-token flow, using the given credentials or else those saved by
`berth-runtime login` (see runtime.images.auth).

Pull accepts an OCI image manifest, a Docker v2 manifest, and an OCI index or Docker manifest list
(the entry for linux and this host's architecture is chosen). The manifest's digest is checked
when pulling by digest, every blob is streamed into the store and verified against its
descriptor's digest and size, and blobs already in the store are not downloaded again. The image
enters the store's index only at the very end; a failed pull removes the blobs and layers it
added. Push uploads the blobs the registry lacks (HEAD, then POST + monolithic PUT) and then the
manifest, byte for byte as stored, so its digest is the local manifest digest.

Progress: `progress`, when given, is called with one dict per event. Every event has `action`
("pull" or "push"), `ref` and `status`:

- `resolved`: the manifest is known; also `manifest_digest`, `layers` (count), `size` (bytes of
  config plus layers).
- `exists`: a blob needs no transfer (already in the local store on pull, already in the
  registry on push); also `kind` ("config" or "layer"), `digest`, `size`.
- `downloading` / `uploading`: a blob transfer starts; `kind`, `digest`, `size`, `current` (0).
- `progress`: bytes moved so far for that blob, at most about once per MiB; `kind`, `digest`,
  `size`, `current`.
- `complete`: the blob is transferred and verified; `kind`, `digest`, `size`, `current`.
- `done`: the end; `manifest_digest`, and on pull also `image_id` and `tags`.
"""

from __future__ import annotations

import json
import platform
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import requests
import urllib3

from runtime import fsutil
from runtime.errors import (
    BerthError,
    DigestMismatch,
    ImageError,
    InvalidArgument,
    NotFound,
    RegistryError,
)
from runtime.images.auth import (
    DOCKER_HUB,
    Authenticator,
    Credentials,
    CredentialStore,
    normalise_registry,
)
from runtime.images.reference import Reference, parse_reference
from runtime.images.store import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
    Image,
    ImageStore,
    check_digest,
    sha256_digest,
)

Progress = Callable[[dict[str, Any]], None]

MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST)
LAYER_TYPES = (
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD, MEDIA_DOCKER_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
MAX_MANIFEST_BYTES = 4 << 20
TIMEOUT = (10.0, 120.0)  # connect, read
_CHUNK = 1 << 20
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
           "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class RegistryClient:
    """One registry: picks https or (with `insecure`) http, authenticates, and turns error
    answers into runtime errors."""

    def __init__(self, registry: str, *, insecure: bool = False,
                 credentials: Credentials | None = None):
        self.registry = normalise_registry(registry)
        self.host = "registry-1.docker.io" if self.registry == DOCKER_HUB else self.registry
        self.insecure = insecure
        self.credentials = credentials
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "berth-runtime"
        if insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.auth = Authenticator(self.registry, credentials, self.session,
                                  verify_tls=not insecure)
        self._base: str | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """GET /v2/ to choose the scheme and learn which authentication the registry wants."""
        bases = [f"https://{self.host}"] + ([f"http://{self.host}"] if self.insecure else [])
        failures: list[str] = []
        for base in bases:
            url = f"{base}/v2/"
            try:
                response = self.session.get(url, timeout=TIMEOUT, verify=not self.insecure)
            except requests.exceptions.SSLError as exc:
                failures.append(f"{url}: TLS failed ({_short(exc)})")
                continue
            except requests.ConnectionError as exc:
                failures.append(f"{url}: {_short(exc)}")
                continue
            response.close()
            if response.status_code == 401:
                self.auth.learn(response.headers.get("WWW-Authenticate"))
            elif response.status_code != 200:
                raise RegistryError(
                    f"{url} answered HTTP {response.status_code}; is {self.registry} an OCI "
                    "registry (distribution API v2)?"
                )
            self._base = base
            return
        tls_failed = any("TLS failed" in failure for failure in failures)
        hint = "; if it serves plain HTTP, pass --insecure" if tls_failed and not self.insecure \
            else ""
        raise RegistryError(f"cannot reach registry {self.registry}: {'; '.join(failures)}{hint}")

    def request(self, method: str, path_or_url: str, *, scope: str | None,
                headers: dict[str, str] | None = None, data: Any = None,
                stream: bool = False) -> requests.Response:
        """Send one request, answering a 401 challenge once. The caller checks the status."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        same_host = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self.base_url).netloc
        response: requests.Response | None = None
        for attempt in range(2):
            sent = dict(headers or {})
            authorization = self.auth.header(scope, refresh=attempt > 0) if same_host else None
            if authorization:
                sent["Authorization"] = authorization
            try:
                response = self.session.request(method, url, headers=sent, data=data,
                                                stream=stream, timeout=TIMEOUT,
                                                verify=not self.insecure)
            except requests.ConnectionError as exc:
                raise RegistryError(f"lost the connection to {url}: {_short(exc)}") from None
            if response.status_code != 401 or attempt or not same_host:
                break
            if authorization and self.auth.scheme == "basic":
                break  # the same credentials would be refused again
            self.auth.learn(response.headers.get("WWW-Authenticate"))
            # A bearer challenge may name the scope the request needs.
            scope = self.auth.params.get("scope") or scope
            if self.auth.scheme == "basic" and self.credentials is None:
                break
            response.close()
        assert response is not None
        return response

    def fail(self, response: requests.Response, what: str,
             missing: str = "not found") -> BerthError:
        """The error to raise for an unexpected answer to the request described by `what`;
        `missing` says what a 404 means for it."""
        codes = _error_codes(response)
        detail = "; ".join(f"{code}: {message}" for code, message in codes) or (
            f"HTTP {response.status_code}"
        )
        response.close()
        status = response.status_code
        if status == 401:
            if self.credentials is None:
                return RegistryError(
                    f"{what}: registry {self.registry} requires a login ({detail}); run "
                    f"`berth-runtime login {self.registry}` or pass a username and password"
                )
            if self.auth.scheme == "bearer":
                return RegistryError(
                    f"{what}: access denied to user {self.credentials.username!r} on "
                    f"{self.registry} ({detail})"
                )
            return RegistryError(
                f"login failed for {self.registry}: the registry rejected the credentials of "
                f"user {self.credentials.username!r} ({detail}); check the username and password"
            )
        if status == 403:
            return RegistryError(f"{what}: access denied by {self.registry} ({detail})")
        if status == 404 or any(code.endswith("_UNKNOWN") for code, _ in codes):
            return NotFound(f"{what}: {missing} on {self.registry} ({detail})")
        return RegistryError(f"{what}: registry {self.registry} answered {detail}")

    def get_manifest(self, path: str, reference: str, scope: str,
                     what: str) -> tuple[bytes, str, str]:
        """Fetch a manifest or index; returns (bytes, media type, digest of the bytes)."""
        response = self.request(
            "GET", f"/v2/{path}/manifests/{reference}", scope=scope, stream=True,
            headers={"Accept": ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))},
        )
        if response.status_code != 200:
            raise self.fail(response, what, missing=f"no such repository or tag {path}:{reference}"
                            if not reference.startswith("sha256:")
                            else f"no manifest {reference} in repository {path}")
        with response:
            body = response.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
        if len(body) > MAX_MANIFEST_BYTES:
            raise ImageError(f"{what}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ImageError(f"{what}: the manifest is not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise ImageError(f"{what}: the manifest is not a JSON object")
        if document.get("schemaVersion") == 1:
            raise ImageError(
                f"{what}: Docker schema 1 manifests are not supported; re-push the image with a "
                "current client"
            )
        header_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        media_type = document.get("mediaType") or header_type
        if media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
            # An OCI index/manifest may omit mediaType; tell them apart by their fields.
            media_type = MEDIA_OCI_INDEX if "manifests" in document else MEDIA_OCI_MANIFEST
        digest = sha256_digest(body)
        served = response.headers.get("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != digest:
            raise DigestMismatch(
                f"{what}: the manifest does not match the digest the registry gave for it "
                f"({served}; content is {digest})"
            )
        return body, media_type, digest


def client_for(store: ImageStore, registry: str, *, insecure: bool = False,
               username: str | None = None, password: str | None = None) -> RegistryClient:
    """A client for `registry` with the given credentials or else the saved login."""
    credentials: Credentials | None
    if username:
        credentials = Credentials(username, password or "")
    elif password:
        raise InvalidArgument("a password was given without a username; pass both")
    else:
        credentials = CredentialStore(store.root).get(registry)
    return RegistryClient(registry, insecure=insecure, credentials=credentials)


# -- pull ------------------------------------------------------------------------------------

def pull(store: ImageStore, ref: str, *, insecure: bool = False, username: str | None = None,
         password: str | None = None, progress: Progress | None = None) -> Image:
    """Download `ref` from its registry into `store` and register it (tagged when `ref` has a
    tag). Returns the image. Raises NotFound for an unknown repository or tag, RegistryError
    for authentication and transport failures, DigestMismatch for corrupt content."""
    reference = parse_reference(ref)
    emit = _emitter(progress, "pull", str(reference))
    path = reference.remote_path
    scope = f"repository:{path}:pull"
    what = f"pull {reference}"
    with client_for(store, reference.registry, insecure=insecure, username=username,
                    password=password) as client:
        target = reference.digest or reference.tag or "latest"
        body, media_type, digest = client.get_manifest(path, target, scope, what)
        if reference.digest and digest != reference.digest:
            raise DigestMismatch(
                f"{what}: the registry served a manifest with digest {digest}, not the one asked "
                "for; refusing it"
            )
        index_digest = ""
        if media_type in INDEX_TYPES:
            index_digest = digest
            chosen = _choose_platform(json.loads(body), what)
            body, media_type, digest = client.get_manifest(path, chosen, scope, what)
            if digest != chosen:
                raise DigestMismatch(
                    f"{what}: the platform manifest has digest {digest}, but the index lists "
                    f"{chosen}"
                )
        manifest = json.loads(body)
        config_desc, layer_descs = _check_manifest(manifest, what)
        emit(status="resolved", manifest_digest=digest, layers=len(layer_descs),
             size=sum(int(d.get("size", 0)) for d in (config_desc, *layer_descs)))
        added_blobs: list[str] = []
        added_layers: list[str] = []
        try:
            _download(client, store, path, scope, config_desc, "config", emit, added_blobs, what)
            diff_ids = _diff_ids(store, config_desc["digest"], what)
            added_layers += [d for d in diff_ids if not store.layer_dir(d).exists()]
            for desc in layer_descs:
                _download(client, store, path, scope, desc, "layer", emit, added_blobs, what)
            if not store.has_blob(digest):
                store.put_blob_bytes(body, expected_digest=digest)
                added_blobs.append(digest)
            tags = [f"{reference.repository}:{reference.tag}"] if reference.tag else []
            image = store.add_image(manifest, digest, tags)
            if index_digest:
                store.add_index_digest(image.id, index_digest)
        except BaseException:
            _discard(store, added_blobs, added_layers)
            raise
    emit(status="done", manifest_digest=digest, image_id=image.id, tags=image.tags)
    return image


def _choose_platform(index: dict[str, Any], what: str) -> str:
    """The digest of the index entry for linux and this host's architecture."""
    arch = _GOARCH.get(platform.machine().lower(), platform.machine().lower())
    offered: list[str] = []
    for entry in index.get("manifests") or []:
        plat = entry.get("platform") or {}
        offered.append(f"{plat.get('os', '?')}/{plat.get('architecture', '?')}")
        if plat.get("os") == "linux" and plat.get("architecture") == arch:
            if entry.get("mediaType", MEDIA_OCI_MANIFEST) not in MANIFEST_TYPES:
                continue
            check_digest(str(entry.get("digest")))
            return str(entry["digest"])
    raise NotFound(
        f"{what}: the image has no variant for linux/{arch}; it offers "
        f"{', '.join(offered) or 'nothing'}"
    )


def _check_manifest(manifest: Any, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate the fields pull relies on; returns (config descriptor, layer descriptors)."""
    config = manifest.get("config") if isinstance(manifest, dict) else None
    layers = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ImageError(f"{what}: the manifest lacks `config` or `layers`")
    for desc in (config, *layers):
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            raise ImageError(f"{what}: a manifest descriptor has no digest")
        check_digest(desc["digest"])
        if not isinstance(desc.get("size"), int) or desc["size"] < 0:
            raise ImageError(f"{what}: descriptor {desc['digest']} has no valid size")
    for desc in layers:
        if desc.get("mediaType") not in LAYER_TYPES:
            raise ImageError(
                f"{what}: layer {desc['digest']} has media type {desc.get('mediaType')!r}; "
                f"berth unpacks {', '.join(LAYER_TYPES[:4])}"
            )
        if desc.get("urls"):
            raise ImageError(f"{what}: layer {desc['digest']} is a foreign layer (urls); "
                             "berth only pulls layers the registry serves")
    return config, layers


def _diff_ids(store: ImageStore, config_digest: str, what: str) -> list[str]:
    try:
        config = json.loads(store.read_blob(config_digest))
        diff_ids = config["rootfs"]["diff_ids"]
        for diff_id in diff_ids:
            check_digest(diff_id)
        return list(diff_ids)
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{what}: the image config {config_digest} has no rootfs.diff_ids") \
            from None


class _CountingReader:
    """A blob download: reads at most size + 1 bytes (so an oversized blob is detected, not
    stored) and reports progress about once per MiB."""

    def __init__(self, raw: Any, size: int, report: Callable[[int], None]):
        self.raw = raw
        self.limit = size + 1
        self.current = 0
        self.report = report
        self._reported = 0

    def read(self, amount: int = _CHUNK) -> bytes:
        amount = min(amount, self.limit - self.current)
        if amount <= 0:
            return b""
        chunk = self.raw.read(amount)
        self.current += len(chunk)
        if self.current - self._reported >= _CHUNK:
            self._reported = self.current
            self.report(self.current)
        return bytes(chunk)


def _download(client: RegistryClient, store: ImageStore, path: str, scope: str,
              desc: dict[str, Any], kind: str, emit: Callable[..., None],
              added: list[str], what: str) -> None:
    digest, size = desc["digest"], int(desc["size"])
    if store.has_blob(digest):
        emit(status="exists", kind=kind, digest=digest, size=size)
        return
    emit(status="downloading", kind=kind, digest=digest, size=size, current=0)
    # identity: the digest covers the bytes as stored, not a transport re-encoding of them.
    response = client.request("GET", f"/v2/{path}/blobs/{digest}", scope=scope, stream=True,
                              headers={"Accept-Encoding": "identity"})
    if response.status_code != 200:
        raise client.fail(response, f"{what}: {kind} blob {digest}")

    def report(current: int) -> None:
        emit(status="progress", kind=kind, digest=digest, size=size, current=current)

    with response:
        try:
            reader = cast(IO[bytes], _CountingReader(response.raw, size, report))
            store.put_blob(reader, expected_digest=digest, expected_size=size)
        except DigestMismatch as exc:
            raise DigestMismatch(f"{what}: {kind} blob {digest} from {client.registry}: {exc}") \
                from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise RegistryError(f"{what}: download of {digest} broke off: {_short(exc)}") \
                from None
    added.append(digest)
    emit(status="complete", kind=kind, digest=digest, size=size, current=size)


def _discard(store: ImageStore, blobs: list[str], diff_ids: list[str]) -> None:
    """Remove what a failed pull added, unless an image in the index has come to use it."""
    import shutil

    with fsutil.locked(store.lock_path):
        images = store.list()
        live_blobs = {i.id for i in images} | {i.manifest_digest for i in images} | {
            layer.digest for i in images for layer in i.layers
        }
        live_layers = {layer.diff_id for i in images for layer in i.layers}
        for digest in blobs:
            if digest not in live_blobs:
                store.blob_path(digest).unlink(missing_ok=True)
        for diff_id in diff_ids:
            if diff_id not in live_layers:
                shutil.rmtree(store.layer_dir(diff_id), ignore_errors=True)


# -- push ------------------------------------------------------------------------------------

def push(store: ImageStore, ref: str, *, insecure: bool = False, username: str | None = None,
         password: str | None = None, progress: Progress | None = None) -> str:
    """Upload the local image tagged `ref` to the registry `ref` names; returns the manifest
    digest. Tag the image first (`image tag busybox 127.0.0.1:5000/busybox`), as with docker."""
    reference = parse_reference(ref)
    if reference.digest:
        raise InvalidArgument(f"cannot push to a digest reference {ref!r}; use NAME[:TAG]")
    image = store.get(str(reference))
    emit = _emitter(progress, "push", str(reference))
    path = reference.remote_path
    scope = f"repository:{path}:pull,push"
    what = f"push {reference}"
    manifest_bytes = store.read_blob(image.manifest_digest)
    manifest = json.loads(manifest_bytes)
    config_desc = manifest["config"]
    media_type = manifest.get("mediaType") or (
        MEDIA_DOCKER_MANIFEST if config_desc.get("mediaType") == MEDIA_DOCKER_CONFIG
        else MEDIA_OCI_MANIFEST
    )
    layer_descs = list(manifest.get("layers") or [])
    emit(status="resolved", manifest_digest=image.manifest_digest, layers=len(layer_descs),
         size=sum(int(d.get("size", 0)) for d in (config_desc, *layer_descs)))
    with client_for(store, reference.registry, insecure=insecure, username=username,
                    password=password) as client:
        for desc in layer_descs:
            _upload(client, store, path, scope, desc, "layer", emit, what)
        _upload(client, store, path, scope, config_desc, "config", emit, what)
        response = client.request(
            "PUT", f"/v2/{path}/manifests/{reference.tag}", scope=scope,
            headers={"Content-Type": media_type}, data=manifest_bytes,
        )
        if response.status_code not in (200, 201):
            raise client.fail(response, f"{what}: manifest")
        response.close()
        served = response.headers.get("Docker-Content-Digest")
        if served and served != image.manifest_digest:
            raise RegistryError(
                f"{what}: the registry stored the manifest as {served}, expected "
                f"{image.manifest_digest}"
            )
    emit(status="done", manifest_digest=image.manifest_digest)
    return image.manifest_digest


class _FileBody:
    """A blob upload body: iterable in 1 MiB chunks with a known length (so requests sends a
    Content-Length, not chunked encoding), re-readable if the request is retried."""

    def __init__(self, blob: Path, size: int, report: Callable[[int], None]):
        self.blob = blob
        self.size = size
        self.report = report

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        with open(self.blob, "rb") as f:
            while chunk := f.read(_CHUNK):
                sent += len(chunk)
                yield chunk
                self.report(sent)


def _upload(client: RegistryClient, store: ImageStore, path: str, scope: str,
            desc: dict[str, Any], kind: str, emit: Callable[..., None], what: str) -> None:
    digest, size = desc["digest"], int(desc["size"])
    head = client.request("HEAD", f"/v2/{path}/blobs/{digest}", scope=scope)
    head.close()
    if head.status_code == 200:
        emit(status="exists", kind=kind, digest=digest, size=size)
        return
    if head.status_code != 404:
        raise client.fail(head, f"{what}: {kind} blob {digest}")
    if not store.has_blob(digest):
        raise ImageError(
            f"{what}: {kind} blob {digest} is not in the local store (only its unpacked layer); "
            "pull or import the image again to push it"
        )
    emit(status="uploading", kind=kind, digest=digest, size=size, current=0)
    start = client.request("POST", f"/v2/{path}/blobs/uploads/", scope=scope)
    start.close()
    if start.status_code != 202 or not start.headers.get("Location"):
        raise client.fail(start, f"{what}: starting the upload of {digest}")
    session_url = urllib.parse.urljoin(client.base_url + "/", start.headers["Location"])
    separator = "&" if urllib.parse.urlsplit(session_url).query else "?"
    target = f"{session_url}{separator}digest={urllib.parse.quote(digest)}"

    def report(current: int) -> None:
        if current < size:
            emit(status="progress", kind=kind, digest=digest, size=size, current=current)

    response = client.request(
        "PUT", target, scope=scope, data=_FileBody(store.blob_path(digest), size, report),
        headers={"Content-Type": "application/octet-stream"},
    )
    response.close()
    if response.status_code != 201:
        error = client.fail(response, f"{what}: upload of {kind} blob {digest}")
        # Free the registry's half-finished upload session; its answer does not matter.
        client.request("DELETE", session_url, scope=scope).close()
        raise error
    emit(status="complete", kind=kind, digest=digest, size=size, current=size)


# -- login -----------------------------------------------------------------------------------

def login(root: Path | str, registry: str, username: str, password: str, *,
          insecure: bool = False) -> str:
    """Check `username`/`password` against `registry` and save them under `root` (mode 0600)
    for later pulls and pushes. Returns the registry name they are saved under."""
    if not username:
        raise InvalidArgument("login needs a username (-u USERNAME)")
    name = normalise_registry(registry)
    credentials = Credentials(username, password)
    with RegistryClient(name, insecure=insecure, credentials=credentials) as client:
        client.ping()
        if client.auth.scheme == "bearer":
            client.auth.token(None)
        elif client.auth.scheme == "basic":
            response = client.request("GET", "/v2/", scope=None)
            if response.status_code != 200:
                raise client.fail(response, f"login to {name}")
            response.close()
    CredentialStore(root).save(name, credentials)
    return name


def logout(root: Path | str, registry: str) -> bool:
    """Forget the saved login for `registry`; False when there was none."""
    return CredentialStore(root).remove(registry)


# -- helpers ---------------------------------------------------------------------------------

def _emitter(progress: Progress | None, action: str, ref: str) -> Callable[..., None]:
    def emit(**event: Any) -> None:
        if progress is not None:
            progress({"action": action, "ref": ref, **event})

    return emit


def _error_codes(response: requests.Response) -> list[tuple[str, str]]:
    """The (code, message) pairs of a distribution API error body, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [(str(e.get("code", "")), str(e.get("message", ""))) for e in errors
            if isinstance(e, dict)]


def _short(exc: BaseException) -> str:
    """A one-line reason from a requests/urllib3 exception chain."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "Connection reset", "WRONG_VERSION_NUMBER",
                   "CERTIFICATE_VERIFY_FAILED", "wrong version number"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def registry_of(ref: str) -> str:
    """The registry a reference points at (`busybox` -> `docker.io`)."""
    return normalise_registry(parse_reference(ref).registry)


__all__ = ["RegistryClient", "login", "logout", "pull", "push", "registry_of", "Reference"]
