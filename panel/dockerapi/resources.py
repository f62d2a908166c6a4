"""Docker API endpoints for volumes, networks and images: Berth's objects in Docker's shapes,
created and removed through Berth's services (the policy and audit of the REST API)."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from panel.access import policy
from panel.dockerapi.http import DockerError, actor, docker_view
from panel.dockerapi.shapes import PROJECT_LABEL, field
from panel.dockerapi.views import choose_project, find_container
from panel.workloads import services
from panel.workloads.models import Image, Network, Volume


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise DockerError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise DockerError(400, "the request body must be a JSON object")
    return body


def _labels(obj: Any) -> dict[str, str]:
    project = {PROJECT_LABEL: obj.project.name} if obj.project_id else {}
    return {**(obj.labels or {}), **project}


def _time(obj: Any) -> str:
    return obj.created_at.isoformat().replace("+00:00", "Z")


def _visible(request: HttpRequest, model: type[Model], action: str) -> Any:
    return policy.visible(request.user, model._default_manager.select_related("project"), action,
                          request.auth)  # type: ignore[attr-defined]


def _find(request: HttpRequest, model: type[Model], ref: str, action: str,
          missing: str) -> Any:
    """The visible object named `ref` (or, for networks, whose id starts with it), checked
    for `action`; 404 with Docker's `missing` message otherwise (audited when it exists)."""
    visible = _visible(request, model, f"{model._meta.model_name}.view")
    found = visible.filter(name=ref).first()
    if found is None and model is Network and len(ref) >= 3:
        found = next((n for n in visible if network_id(n).startswith(ref)), None)
    if found is None:
        hidden = model._default_manager.filter(name=ref).first()
        if hidden is not None:
            policy.deny_missing(actor(request), action, hidden)
        raise DockerError(404, missing)
    policy.authorize(request.user, action, found, actor(request),
                     request.auth)  # type: ignore[attr-defined]
    return found


# --- volumes ------------------------------------------------------------------------------------

def volume_shape(volume: Volume) -> dict[str, Any]:
    return {"Name": volume.name, "Driver": "local", "Mountpoint": "", "Scope": "local",
            "CreatedAt": _time(volume), "Labels": _labels(volume), "Options": {}}


@docker_view
@require_http_methods(["GET"])
def volumes_list(request: HttpRequest) -> HttpResponse:
    rows = _visible(request, Volume, "volume.view").order_by("name")
    return JsonResponse({"Volumes": [volume_shape(v) for v in rows], "Warnings": []})


@docker_view
@require_http_methods(["POST"])
def volume_create(request: HttpRequest) -> HttpResponse:
    """Docker's create is idempotent: a visible volume of that name is answered as it is."""
    body = _body(request)
    name = str(body.get("Name") or "")
    if body.get("Driver") not in (None, "", "local"):
        raise DockerError(400, f"volume driver {body['Driver']!r} is not supported: use local")
    existing = _visible(request, Volume, "volume.view").filter(name=name).first() if name \
        else None
    if existing is not None:
        return JsonResponse(volume_shape(existing), status=201)
    labels = dict(field(body, "Labels", dict) or {})
    project = choose_project(request, "volume.create", labels)
    labels.pop(PROJECT_LABEL, None)
    policy.authorize_create(request.user, "volume.create", project, actor(request),
                            request.auth)  # type: ignore[attr-defined]
    volume, _ = services.create_volume(actor(request), name or secrets.token_hex(32), labels,
                                       project=project)  # no name: Docker's is random hex
    return JsonResponse(volume_shape(volume), status=201)


@docker_view
@require_http_methods(["GET", "DELETE"])
def volume_detail(request: HttpRequest, name: str) -> HttpResponse:
    action = "volume.view" if request.method == "GET" else "volume.remove"
    volume = _find(request, Volume, name, action, f"get {name}: no such volume")
    if request.method == "GET":
        return JsonResponse(volume_shape(volume))
    services.remove_volume(actor(request), volume)
    return HttpResponse(status=204)


# --- networks -----------------------------------------------------------------------------------

def network_id(network: Network) -> str:
    return hashlib.sha256(network.name.encode()).hexdigest()


def network_shape(network: Network) -> dict[str, Any]:
    config = [{"Subnet": network.subnet, **({"Gateway": network.gateway}
                                             if network.gateway else {})}] \
        if network.subnet else []
    return {"Name": network.name, "Id": network_id(network), "Created": _time(network),
            "Scope": "local", "Driver": network.driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": network.internal, "Attachable": True, "Ingress": False,
            "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": _labels(network)}


@docker_view
@require_http_methods(["GET"])
def networks_list(request: HttpRequest) -> HttpResponse:
    rows = _visible(request, Network, "network.view").order_by("name")
    return JsonResponse([network_shape(n) for n in rows], safe=False)


@docker_view
@require_http_methods(["POST"])
def network_create(request: HttpRequest) -> HttpResponse:
    body = _body(request)
    if body.get("Driver") not in (None, "", "bridge"):
        raise DockerError(400, f"network driver {body['Driver']!r} is not supported: use "
                               "bridge")
    labels = dict(field(body, "Labels", dict) or {})
    project = choose_project(request, "network.create", labels)
    labels.pop(PROJECT_LABEL, None)
    policy.authorize_create(request.user, "network.create", project, actor(request),
                            request.auth)  # type: ignore[attr-defined]
    configs = (field(body, "IPAM", dict) or {}).get("Config") or [{}]
    config = configs[0] if isinstance(configs, list) and isinstance(configs[0], dict) else None
    if config is None:
        raise DockerError(400, "IPAM.Config: must be an array of {Subnet, Gateway}")
    name = str(body.get("Name") or "")
    if Network.objects.filter(name=name).exists():
        raise DockerError(409, f"network with name {name} already exists")
    network, _ = services.create_network(actor(request), name, config.get("Subnet") or None,
                                         config.get("Gateway") or None, labels, project,
                                         bool(body.get("Internal")))
    return JsonResponse({"Id": network_id(network), "Warning": ""}, status=201)


@docker_view
@require_http_methods(["GET", "DELETE"])
def network_detail(request: HttpRequest, ref: str) -> HttpResponse:
    action = "network.view" if request.method == "GET" else "network.remove"
    network = _find(request, Network, ref, action, f"network {ref} not found")
    if request.method == "GET":
        return JsonResponse(network_shape(network))
    services.remove_network(actor(request), network)
    return HttpResponse(status=204)


@docker_view
@require_http_methods(["POST"])
def network_attach(request: HttpRequest, ref: str, verb: str) -> HttpResponse:
    """connect | disconnect a container that has not run yet (docker-compose does both to set
    a service's aliases before it starts it)."""
    network = _find(request, Network, ref, "network.view", f"network {ref} not found")
    body = _body(request)
    container = find_container(request, str(body.get("Container") or ""), "container.update")
    endpoint = field(body, "EndpointConfig", dict) or {}
    aliases = tuple(field(endpoint, "Aliases", list, "EndpointConfig.") or ())
    if verb == "connect":
        services.change_networks(actor(request), container, connect=(network.name,),
                                 aliases=aliases)
    else:
        services.change_networks(actor(request), container, disconnect=(network.name,))
    return HttpResponse(status=200)


# --- images -------------------------------------------------------------------------------------

def _image_id(image: Image) -> str:
    value = image.image_id or hashlib.sha256(image.reference.encode()).hexdigest()
    return value if value.startswith("sha256:") else f"sha256:{value}"


def image_shape(image: Image) -> dict[str, Any]:
    return {"Id": _image_id(image), "RepoTags": [image.reference], "RepoDigests": [],
            "ParentId": "", "Created": int(image.created_at.timestamp()), "Size": image.size,
            "VirtualSize": image.size, "SharedSize": -1, "Labels": {}, "Containers": -1}


def _image(ref: str) -> Image:
    """The image tagged `ref` (busybox means busybox:latest), or whose id starts with it."""
    tagged = ":" in ref.rsplit("/", 1)[-1] or "@" in ref
    found = Image.objects.filter(reference=ref if tagged else f"{ref}:latest").first()
    digits = ref.removeprefix("sha256:")
    if found is None and len(digits) >= 6:
        found = next((i for i in Image.objects.all()
                      if _image_id(i).removeprefix("sha256:").startswith(digits)), None)
    if found is None:
        raise DockerError(404, f"No such image: {ref}")
    return found


@docker_view
@require_http_methods(["GET"])
def images_list(request: HttpRequest) -> HttpResponse:
    policy.authorize(request.user, "image.view", None, actor(request),
                     request.auth)  # type: ignore[attr-defined]
    return JsonResponse([image_shape(i) for i in Image.objects.order_by("reference")],
                        safe=False)


@docker_view
@require_http_methods(["GET"])
def image_inspect(request: HttpRequest, name: str) -> HttpResponse:
    policy.authorize(request.user, "image.view", None, actor(request),
                     request.auth)  # type: ignore[attr-defined]
    image = _image(name)
    return JsonResponse({**image_shape(image), "Created": _time(image), "Os": "linux",
                         "Architecture": "amd64", "Config": {}, "RootFS": {"Type": "layers",
                                                                          "Layers": []},
                         "Metadata": {"LastTagTime": _time(image)},
                         "Hosts": sorted(image.hosts.values_list("name", flat=True))})
