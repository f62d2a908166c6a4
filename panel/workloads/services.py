"""Service functions of workloads: the only writers of images, containers, volumes, networks
and operations. Reports from agents are recorded in reports.py, reconciliation is reconcile.py.

Each function validates first (a failure raises before anything is written), writes the change
and its audit event in one transaction, and queues the agent's work with transaction.on_commit."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from panel.access.models import Project
from panel.audit.services import Actor, record_event
from panel.fleet.dispatch import send_on_commit
from panel.fleet.models import Host
from panel.fleet.placement import NoHostFits, PlacementRequest, choose_host, parse_constraint
from panel.live.emit import emit_container, emit_operation
from panel.workloads.models import (
    ACTIVE_STATUSES,
    RUNNING,
    STOPPED,
    Container,
    Image,
    Network,
    Operation,
    Volume,
)
from panel.workloads.privileges import check_privileges
from panel.workloads.secrets import decrypt_secrets, encrypt_secrets
from panel.workloads.spec import (
    BUILTIN_NETWORKS,
    Errors,
    ValidationFailed,
    parse_container_request,
    parse_image,
)
from runtime.containers.names import generate_name
from runtime.containers.options import NAME_PATTERN, parse_signal
from runtime.errors import InvalidArgument
from runtime.protocol import GENERATION_LABEL, UID_LABEL, field_names, is_default

# spec fields that have a column of their own; the others live in Container.options. (The
# `pid` column is the observed process id, not the spec's pid namespace mode.)
SPEC_COLUMNS = tuple(name for name in field_names()
                     if name in {f.name for f in Container._meta.get_fields()
                                 if getattr(f, "concrete", False)}
                     and name != "pid")


class Conflict(Exception):
    """The change clashes with existing state (a volume in use, a running container)."""


# --- helpers ------------------------------------------------------------------------------------

def container_summary(container: Container) -> dict[str, Any]:
    """The audit view of a container: its spec and placement, secret *names* only."""
    return {
        "image": container.image, "command": container.command,
        "entrypoint": container.entrypoint, "env": container.env,
        "secrets": sorted(container.secret_names), "ports": container.ports,
        "volumes": container.volumes, "networks": container.networks,
        "memory": container.memory, "cpus": container.cpus, "restart": container.restart,
        "healthcheck": container.healthcheck, "labels": container.labels,
        "init": container.init, "constraints": container.constraints,
        **{key: value for key, value in (container.options or {}).items()
           if key not in ("network_aliases", "port_group")},
        "host": container.host.name if container.host else None,
        "desired_state": container.desired_state, "generation": container.generation,
    }


def container_spec(container: Container) -> dict[str, Any]:
    """The spec `berth.agent.apply_container` receives (runtime/protocol.py), secrets in clear
    (secret files, keyed by their target path among the secrets, as the content of their
    `files` entries)."""
    secrets = decrypt_secrets(container.secrets_encrypted)
    env = [f"{k}={v}" for k, v in container.env.items()]
    env += [f"{k}={v}" for k, v in secrets.items() if not k.startswith("/")]
    options = dict(container.options or {})
    if options.get("files"):
        options["files"] = [_with_content(entry, secrets) for entry in options["files"]]
    custom = [n for n in container.networks if n not in BUILTIN_NETWORKS]
    network_specs = {n.name: n.to_spec() for n in Network.objects.filter(name__in=custom)}
    return {
        "uid": str(container.uid), "name": container.name, "generation": container.generation,
        "desired": container.desired_state, "image": container.image, "pull": container.pull,
        "command": list(container.command), "entrypoint": container.entrypoint, "env": env,
        "ports": list(container.ports), "volumes": list(container.volumes),
        "networks": list(container.networks), "network_specs": network_specs,
        "memory": container.memory, "cpus": container.cpus, "restart": container.restart,
        "healthcheck": container.healthcheck,
        "labels": {**container.labels, UID_LABEL: str(container.uid),
                   GENERATION_LABEL: str(container.generation)},
        "init": container.init,
        **options,
    }


def _with_content(entry: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """A `files` entry as the agent takes it: a secret's content filled in (base64)."""
    if not entry.get("secret"):
        return entry
    content = secrets.get(entry["target"], "")
    return {key: value for key, value in entry.items() if key != "secret"} | {
        "content": base64.b64encode(content.encode()).decode()}


def start_operation(actor: Actor, kind: str, target: Any, host_name: str = "",
                    status: str = Operation.PENDING, message: str = "") -> Operation:
    """A new operation row for `kind` on `target` (inside the caller's transaction)."""
    project = getattr(target, "project", None)
    operation = Operation.objects.create(
        kind=kind, project=project if isinstance(project, Project) else None,
        target_type=target._meta.model_name, target_id=str(target.pk),
        target_name=str(getattr(target, "name", "")), host_name=host_name,
        actor_name=actor.name, status=status, message=message,
        progress=1.0 if status == Operation.SUCCEEDED else 0.0)
    emit_operation(operation)  # to browsers, on commit
    if isinstance(target, Container):
        emit_container(target)
    return operation


def send_apply(container: Container, operation: Operation | None) -> None:
    """Queue apply_container for the container's host on commit, and note when it was sent."""
    assert container.host is not None
    now = timezone.now()
    Container.objects.filter(pk=container.pk).update(
        applied_generation=container.generation, applied_at=now)
    container.applied_generation, container.applied_at = container.generation, now
    send_on_commit(container.host.name, "apply_container", container_spec(container),
                   str(operation.pk) if operation else None)


def placement_request(container: Container | dict[str, Any],
                      exclude: set[int] | None = None) -> PlacementRequest:
    """What placement needs from a container (a model or the validated create fields)."""
    get = container.get if isinstance(container, dict) else \
        lambda key, default=None: getattr(container, key, default)
    image_hosts = None
    if not get("pull", False):
        image_hosts = set(Image.hosts.through.objects.filter(
            image__reference=get("image")).values_list("host_id", flat=True))
    return PlacementRequest(memory=get("memory", 0) or 0,
                            constraints=[parse_constraint(c) for c in get("constraints") or []],
                            image_hosts=image_hosts, image=str(get("image") or ""),
                            exclude=exclude or set())


def _check_privileges(actor: Actor, project: Project | None, fields: dict[str, Any],
                      errors: Errors) -> None:
    """The person's right to the fields that loosen isolation (panel/workloads/privileges.py),
    and a `container:NAME` network or IPC namespace only of a container of the same project."""
    for field, messages in check_privileges(actor, project, fields).items():
        for message in messages:
            errors.add(field, message)
    for field in ("network_mode", "ipc"):
        value = str(fields.get(field) or "")
        if value.startswith("container:"):
            other = Container.objects.filter(name=value.removeprefix("container:")).first()
            if other is None or other.project_id != (project.pk if project else None):
                errors.add(field, f"{value}: no container of this project has that name; "
                                  "join a container of the same project")


def _names_in_use(model: type[Network], kind: str, names: list[str], errors: Errors,
                  field: str, extra: tuple[str, ...] = ()) -> None:
    known = set(model.objects.filter(name__in=names).values_list("name", flat=True)) | set(extra)
    for name in names:
        if name not in known:
            allowed = sorted(set(model.objects.values_list("name", flat=True)[:20]) | set(extra))
            errors.add(field, f"unknown {kind} {name!r}: known {kind}s are "
                              f"{', '.join(allowed) or 'none'}")


# --- containers ---------------------------------------------------------------------------------

@transaction.atomic
def create_container(actor: Actor, data: dict[str, Any], project: Project | None = None,
                     options: dict[str, Any] | None = None,
                     secret_files: dict[str, str] | None = None) -> tuple[Container, Operation]:
    """Validate a create request, place the container in `project` and queue it for its host.
    `secret_files` (a stack replica's secrets mounted as files: target path -> content) are
    encrypted with its secret environment values, keyed by their absolute target.

    Raises ValidationFailed (nothing written) naming every bad field: unknown image (it must be
    in the image table, or `pull: true`), malformed ports, memory below 6m, unknown networks or
    host, a taken name, no host fitting the constraints."""
    fields, errors = parse_container_request(data)
    _check_privileges(actor, project, fields, errors)
    if "name" in fields and Container.objects.filter(name=fields["name"]).exists():
        errors.add("name", f"a container named {fields['name']!r} already exists: choose "
                           "another name or remove that container")
    if fields.get("image") and not fields.get("pull") \
            and not Image.objects.filter(reference=fields["image"]).exists():
        errors.add("image", f"image {fields['image']!r} is not known on any host: pull it first "
                            "(POST /api/v1/images/) or set pull: true to pull it on the host")
    _names_in_use(Network, "network", fields.get("networks", []), errors, "networks",
                  BUILTIN_NETWORKS)
    pinned = None
    if fields.get("host_name"):
        pinned = Host.objects.filter(name=fields["host_name"]).first()
        if pinned is None:
            known = ", ".join(Host.objects.values_list("name", flat=True)[:20]) or "none"
            errors.add("host", f"unknown host {fields['host_name']!r}: known hosts are {known}")
    errors.check()
    try:
        host = choose_host(placement_request(fields), pinned)
    except NoHostFits as exc:
        raise ValidationFailed({"host" if pinned or not fields["constraints"] else "constraints":
                                [str(exc)]}) from None
    name = fields.get("name") or generate_name(
        set(Container.objects.values_list("name", flat=True)))
    now = timezone.now()
    secrets = {**fields.pop("secrets"), **(secret_files or {})}
    start = fields.pop("start")
    fields.pop("host_name")
    fields.pop("name", None)
    # every spec field without a column of its own, where it differs from its default
    extra = {key: fields.pop(key) for key in list(fields) if key not in SPEC_COLUMNS}
    options = {**{k: v for k, v in extra.items() if not is_default(k, v)}, **(options or {})}
    try:
        with transaction.atomic():
            container = Container.objects.create(
                name=name, project=project, **fields, options=options,
                secrets_encrypted=encrypt_secrets(secrets),
                secret_names=sorted(secrets), requested_host=pinned, host=host,
                desired_state=RUNNING if start else STOPPED, desired_changed_at=now)
    except IntegrityError:
        raise ValidationFailed({"name": [f"a container named {name!r} already exists: choose "
                                         "another name"]}) from None
    operation = start_operation(actor, "container.create", container, host.name)
    record_event(actor, "container.create", container, after=container_summary(container),
                 operation=str(operation.pk))
    send_apply(container, operation)
    return container, operation


def _lock(container: Container) -> Container:
    # project__team: the audit event copies both, without two more queries.
    return Container.objects.select_for_update(of=("self",)).select_related(
        "host", "project__team").get(pk=container.pk)


def _set_desired(actor: Actor, container: Container, action: str, desired: str | None,
                 **details: Any) -> tuple[Container, Operation]:
    container = _lock(container)
    before = {"desired_state": container.desired_state}
    if (desired is not None and desired != container.desired_state) or action in (
            "container.start", "container.restart"):
        container.desired_state = desired or container.desired_state
        container.desired_changed_at = timezone.now()
        container.save(update_fields=["desired_state", "desired_changed_at", "updated_at"])
    host_name = container.host.name if container.host else ""
    operation = start_operation(actor, action, container, host_name)
    record_event(actor, action, container, before=before,
                 after={"desired_state": container.desired_state},
                 operation=str(operation.pk), **details)
    return container, operation


@transaction.atomic
def change_networks(actor: Actor, container: Container, connect: tuple[str, ...] = (),
                    disconnect: tuple[str, ...] = (),
                    aliases: tuple[str, ...] = ()) -> Operation:
    """Attach a container to networks (with extra DNS `aliases`) or detach it, before it has
    ever run: a created container is still its spec, and its host makes it again with the new
    networks. One that runs or has run keeps its networks (a change is a new container)."""
    container = _lock(container)
    if container.desired_state == RUNNING or container.started_at is not None:
        raise Conflict(f"container {container.name} has run: its networks are fixed; create a "
                       "new container on the networks it needs")
    known = set(Network.objects.filter(name__in=connect).values_list("name", flat=True))
    unknown = [n for n in connect if n not in known and n not in BUILTIN_NETWORKS]
    if unknown:
        raise ValidationFailed({"networks": [f"unknown network {unknown[0]!r}"]})
    before = {"networks": list(container.networks),
              "network_aliases": list((container.options or {}).get("network_aliases", []))}
    networks = [n for n in container.networks if n not in disconnect]
    networks += [n for n in connect if n not in networks]
    options = dict(container.options or {})
    options["network_aliases"] = sorted({*before["network_aliases"], *aliases})
    if not options["network_aliases"]:
        options.pop("network_aliases")
    container.networks, container.options = networks, options
    container.generation += 1
    container.save(update_fields=["networks", "options", "generation", "updated_at"])
    operation = start_operation(actor, "container.update", container,
                                container.host.name if container.host else "")
    record_event(actor, "container.update", container, before=before,
                 after={"networks": networks,
                        "network_aliases": options.get("network_aliases", [])},
                 operation=str(operation.pk))
    send_apply(container, operation)
    return operation


@transaction.atomic
def start_container(actor: Actor, container: Container) -> Operation:
    """Desired state running; the host creates the container if needed and starts it."""
    container, operation = _set_desired(actor, container, "container.start", RUNNING)
    if container.host_id:
        send_apply(container, operation)
    return operation


@transaction.atomic
def stop_container(actor: Actor, container: Container, timeout: int | None = None) -> Operation:
    """Desired state stopped; the host stops it (SIGTERM, then SIGKILL after `timeout` s)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or not 0 <= timeout <= 3600):
        raise ValidationFailed({"timeout": ["must be whole seconds from 0 to 3600"]})
    container, operation = _set_desired(actor, container, "container.stop", STOPPED,
                                        timeout=timeout)
    _send_action(container, "stop", {"timeout": timeout} if timeout is not None else {},
                 operation)
    return operation


@transaction.atomic
def restart_container(actor: Actor, container: Container,
                      timeout: int | None = None) -> Operation:
    """Desired state running; the host stops and starts it again."""
    container, operation = _set_desired(actor, container, "container.restart", RUNNING)
    _send_action(container, "restart", {"timeout": timeout} if timeout is not None else {},
                 operation)
    return operation


@transaction.atomic
def kill_container(actor: Actor, container: Container, signal: str | int = "KILL") -> Operation:
    """Send `signal`; KILL and TERM also make the desired state stopped (as `docker kill`)."""
    try:
        number = parse_signal(signal)
    except InvalidArgument as exc:
        raise ValidationFailed({"signal": [str(exc)]}) from None
    ends_it = number in (9, 15)
    container, operation = _set_desired(actor, container, "container.kill",
                                        STOPPED if ends_it else None, signal=number)
    _send_action(container, "kill", {"signal": number}, operation)
    return operation


@transaction.atomic
def remove_container(actor: Actor, container: Container, force: bool = False) -> Operation:
    """Delete the container from the panel and from its host. A running one needs `force`.

    A host that is down gets the removal queued; should it be lost, the host's next snapshot
    lists a container the panel does not know, and reports.py removes that orphan."""
    container = _lock(container)
    if container.status in ACTIVE_STATUSES and container.desired_state == RUNNING and not force:
        raise Conflict(f"container {container.name} is running: stop it first or remove it "
                       "with force")
    host_name = container.host.name if container.host else ""
    operation = start_operation(actor, "container.remove", container, host_name)
    record_event(actor, "container.remove", container, before=container_summary(container),
                 operation=str(operation.pk), force=force)
    if host_name:
        send_on_commit(host_name, "container_action", str(container.uid), "remove",
                       {"force": True}, str(operation.pk))
    else:
        Operation.objects.filter(pk=operation.pk).update(status=Operation.SUCCEEDED,
                                                         progress=1.0, message="removed")
    container.delete()
    return operation


@transaction.atomic
def read_container_secrets(actor: Actor, container: Container) -> dict[str, str]:
    """The secret values of `container` in clear (team admins); the read is audited, with the
    names only."""
    values = decrypt_secrets(container.secrets_encrypted)
    record_event(actor, "container.secrets", container, secret_names=sorted(values))
    return values


def _send_action(container: Container, action: str, params: dict[str, Any],
                 operation: Operation) -> None:
    if container.host is not None:
        send_on_commit(container.host.name, "container_action", str(container.uid), action,
                       params, str(operation.pk))


# --- images, volumes, networks ------------------------------------------------------------------

@transaction.atomic
def pull_image(actor: Actor, reference: Any, host_name: str | None = None,
               credentials: dict[str, str] | None = None) -> tuple[Image, list[Operation]]:
    """Pull `reference` on one host, or on every host that is up; one operation per host."""
    errors = Errors()
    ref = parse_image(reference, errors)
    errors.check()
    if host_name:
        hosts = list(Host.objects.filter(name=host_name))
        if not hosts:
            raise ValidationFailed({"host": [f"unknown host {host_name!r}"]})
    else:
        hosts = list(Host.objects.alive())
        if not hosts:
            raise ValidationFailed({"host": ["no host is up to pull on: start an agent"]})
    image, created = Image.objects.get_or_create(reference=ref)
    operations = []
    for host in hosts:
        operation = start_operation(actor, "image.pull", image, host.name)
        send_on_commit(host.name, "pull_image", ref, credentials or None, str(operation.pk))
        operations.append(operation)
    record_event(actor, "image.pull", image, hosts=[h.name for h in hosts], created=created,
                 operations=[str(o.pk) for o in operations])
    return image, operations


def _valid_name(name: Any, kind: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > 64:
        raise ValidationFailed({"name": [f"a {kind} name is required: [a-zA-Z0-9][a-zA-Z0-9_.-]*,"
                                         " at most 64 characters"]})
    return name


def _labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ValidationFailed({"labels": ['must be an object of strings, e.g. {"team": "web"}']})
    return dict(labels)


@transaction.atomic
def create_volume(actor: Actor, name: Any, labels: dict[str, str] | None = None,
                  host_name: str | None = None,
                  project: Project | None = None) -> tuple[Volume, Operation]:
    """A named volume. Hosts create their copy when a container first mounts it, or now on
    `host_name` when given."""
    name = _valid_name(name, "volume")
    labels = _labels(labels)
    host = None
    if host_name:
        host = Host.objects.filter(name=host_name).first()
        if host is None:
            raise ValidationFailed({"host": [f"unknown host {host_name!r}"]})
    if Volume.objects.filter(name=name).exists():
        raise ValidationFailed({"name": [f"a volume named {name!r} already exists"]})
    volume = Volume.objects.create(name=name, labels=labels, project=project)
    if host is not None:
        operation = start_operation(actor, "volume.create", volume, host.name)
        send_on_commit(host.name, "ensure_volume", name, labels, str(operation.pk))
    else:
        operation = start_operation(actor, "volume.create", volume, status=Operation.SUCCEEDED,
                                    message="hosts create it when a container mounts it")
    record_event(actor, "volume.create", volume, after={"labels": labels, "host": host_name},
                 operation=str(operation.pk))
    return volume, operation


def _users(field: str, name: str) -> list[str]:
    """Names of containers whose `volumes`/`networks` use `name`."""
    users = []
    for container_name, entries in Container.objects.values_list("name", field):
        for entry in entries or []:
            if (entry.split(":", 1)[0] if field == "volumes" else entry) == name:
                users.append(container_name)
                break
    return users


def _remove_from_hosts(actor: Actor, obj: Volume | Network, kind: str,
                       task: str) -> Operation:
    users = _users("volumes" if kind == "volume" else "networks", obj.name)
    if users:
        raise Conflict(f"{kind} {obj.name} is used by {', '.join(users[:10])}: remove those "
                       "containers first")
    hosts = list(obj.hosts.values_list("name", flat=True))
    operation = start_operation(actor, f"{kind}.remove", obj, ",".join(hosts)[:128],
                                status=Operation.PENDING if hosts else Operation.SUCCEEDED)
    for host_name in hosts:
        send_on_commit(host_name, task, obj.name, str(operation.pk))
    record_event(actor, f"{kind}.remove", obj, before={"labels": obj.labels, "hosts": hosts},
                 operation=str(operation.pk))
    obj.delete()
    return operation


@transaction.atomic
def remove_volume(actor: Actor, volume: Volume) -> Operation:
    """Remove a volume that no container uses, from the panel and every host holding it."""
    return _remove_from_hosts(actor, volume, "volume", "remove_volume")


@transaction.atomic
def create_network(actor: Actor, name: Any, subnet: str | None = None,
                   gateway: str | None = None,
                   labels: dict[str, str] | None = None,
                   project: Project | None = None,
                   internal: Any = False) -> tuple[Network, Operation]:
    """A bridge network; each host creates it when a container attached to it arrives.
    `internal`: the bridge forwards nothing in or out of the host, and its containers get no
    default route (they reach only each other)."""
    name = _valid_name(name, "network")
    labels = _labels(labels)
    errors = Errors()
    if not isinstance(internal, bool):
        errors.add("internal", f"{internal!r} is not allowed: must be true or false")
    if name in BUILTIN_NETWORKS or name == "host":
        errors.add("name", f"{name!r} is built in: choose another name")
    elif Network.objects.filter(name=name).exists():
        errors.add("name", f"a network named {name!r} already exists")
    network_address = None
    if subnet:
        try:
            network_address = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            errors.add("subnet", f"{subnet!r} is not an IPv4 subnet ({exc}): e.g. 10.89.1.0/24")
    if gateway:
        try:
            address = ipaddress.IPv4Address(gateway)
            if network_address is None or address not in network_address:
                errors.add("gateway", f"{gateway} must be an address inside the subnet")
        except ValueError:
            errors.add("gateway", f"{gateway!r} is not an IPv4 address")
    errors.check()
    network = Network.objects.create(name=name, subnet=subnet or "", gateway=gateway or "",
                                     internal=internal, labels=labels, project=project)
    operation = start_operation(actor, "network.create", network, status=Operation.SUCCEEDED,
                                message="hosts create it when a container attaches to it")
    record_event(actor, "network.create", network, after=network.to_spec(),
                 operation=str(operation.pk))
    return network, operation


@transaction.atomic
def remove_network(actor: Actor, network: Network) -> Operation:
    """Remove a network that no container uses, from the panel and every host holding it."""
    return _remove_from_hosts(actor, network, "network", "remove_network")
