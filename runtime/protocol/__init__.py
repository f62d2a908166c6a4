"""The wire protocol between the panel's control worker and the host agents, over Celery/Redis.

Plain data only (JSON-serialisable dicts), no Django, so both sides import this module.

Queues
------
- ``host.<name>``: one per host; only that host's agent consumes it.
- ``control``: the control worker (Django) consumes it: reports from agents.

Agent tasks (the panel sends them, on commit, to ``host.<name>``)
-----------------------------------------------------------------
All are idempotent: a retried or duplicated message does no harm.

``berth.agent.apply_container(spec, operation_id)``
    Make the container described by ``spec`` exist on this host and be in ``spec["desired"]``
    state ("running" or "stopped"). The container is found by its uid label; it is created only
    when missing, started only when not running. A spec whose ``generation`` is older than the
    one the host already has is ignored.
``berth.agent.container_action(uid, action, params, operation_id)``
    ``action`` in start | stop | restart | kill | remove; params: ``timeout``, ``signal``.
``berth.agent.pull_image(ref, credentials, operation_id)``
``berth.agent.ensure_volume(name, labels, operation_id)`` / ``remove_volume(name, operation_id)``
``berth.agent.ensure_network(spec, operation_id)`` / ``remove_network(name, operation_id)``
``berth.agent.snapshot()``: send a full snapshot now.
``berth.agent.resend_outcomes(operation_ids)``: send the final ``operation_progress`` of each
    again (the panel asks for operations silent for BERTH_CONTROL_REDELIVERY: a report can be
    lost with a control worker killed as it took it); ids the agent has no outcome for are
    skipped.
``berth.agent.logs(uid, tail, since, until, timestamps)`` -> list of log entries (RPC)
``berth.agent.stats(uid)`` -> stats dict (RPC)

Control tasks (agents send them to ``control``)
-----------------------------------------------
``berth.control.heartbeat(host, inventory)``
``berth.control.container_event(host, uid, event, state)``: event in created | started | exited
    | oom | health | restarting (an exit whose restart waits out its back-off) | restarted |
    removed; ``state`` is `container_state()` of the container.
``berth.control.snapshot(host, containers, images, volumes, networks)``
``berth.control.operation_progress(operation_id, status, progress, message, result)``
``berth.control.reconcile()`` / ``berth.control.check_hosts()``: the panel's own periodic tasks
    (Celery beat); agents never send them.

Payloads (what the panel sends and reads)
-----------------------------------------
Container ``spec`` (apply_container): the fields of `ContainerSpec` (runtime/protocol/container.py,
the one list of a container's fields, with types, defaults and docs; fields at their default may
be left out) plus the envelope ``uid``, ``generation``, ``desired``, ``network_specs`` and
``registry_credentials``. In short: ``uid``, ``name``, ``generation`` (int), ``desired``
("running" | "stopped"), ``image`` (reference), ``pull`` (bool: pull the image first when this
host lacks it), ``command`` (list), ``entrypoint`` (list or None = the image's), ``env`` (list of
"K=V", secrets included in clear: the agent needs them), ``ports`` (list "[IP:][HOST:]CTR[/udp]"),
``volumes`` (list "NAME:/path[:ro]"), ``networks`` (list of names), ``memory`` (bytes, 0 = no
limit), ``cpus`` (float, 0 = no limit), ``restart`` ("no" | "on-failure[:N]" | "always" |
"unless-stopped"), ``healthcheck`` (None or {"test": list, "interval", "timeout",
"start_period", "start_interval": nanoseconds, "retries": int}), ``labels`` (dict; always
holds UID_LABEL and GENERATION_LABEL), ``init`` (bool), ``network_specs`` ({name:
ensure_network spec} for the non-default networks in ``networks``: create them first when
missing).
``container_state()`` also carries ``stop_note``: why the last stop ended in SIGKILL, with the
fix (empty otherwise; cleared by the next start).
``operation_progress``: ``progress`` is a percentage 0..100 (the panel stores 0..1).
Heartbeat ``inventory``: ``cpus`` (int), ``memory`` (bytes), ``disk`` ({"total", "free"} bytes of
the state dir), ``kernel``, ``versions`` ({"runc": …, "conmon": …, "berth": …}), ``labels``
(dict), ``containers_running`` (int).
Snapshot: ``containers`` is a list of `container_state()`; ``images`` a list of {"id",
"names", "size"}; ``volumes`` a list of {"name", "labels"}; ``networks`` a list of {"name",
"subnet", "gateway"}. A host's snapshot is complete: a panel-known container it does not list
is gone from that host.

Agent details (runtime/agent; additions the panel may use or ignore)
--------------------------------------------------------------------
- Every agent task accepts and ignores keyword arguments it does not know; all are sent and
  read as keyword arguments.
- Optional spec fields: ``stop_timeout`` (s), ``stop_signal``, ``user``, ``workdir``,
  ``hostname``, ``read_only``, ``pids_limit``, ``network_aliases`` (extra DNS names on each of
  its networks), ``port_group`` (a name, e.g. "<stack>_<service>": containers of one group on a
  host share their published host ports, and new connections are spread over the members that
  are healthy — or have no health check — and not being stopped; stored as
  PORT_GROUP_LABEL); ``registry_credentials`` ({"username",
  "password", "insecure"}) for the pull. ``pull_image``'s ``credentials`` has the same shape.
  ``ensure_network``'s spec: ``name``, ``subnet``, ``gateway``, ``internal``, ``labels``.
  ``container_action`` params also take ``volumes`` (remove: anonymous volumes too, default
  true). stop/kill/remove of a uid the host does not have succeed (``action`` "absent").
- Results (Celery result and ``operation_progress.result``) of apply_container /
  container_action: {"ok": True, "uid", "action", "runtime_id", "state": container_state()};
  ``action`` is created | replaced | started | stopped | unchanged | ignored (older generation)
  or the container_action's name; a runtime error gives {"ok": False, "error": message} and
  a ``failed`` operation_progress with that message (the task itself does not fail).
- ``logs`` entries: {"timestamp" (RFC 3339), "stream" (stdout | stderr), "text", "complete"};
  ``since``/``until``: RFC 3339, Unix time or a duration ("10m"); ``tail``: int or None.
- Inventory extras: ``memory_available`` (bytes), ``load`` ([1, 5, 15 min]), ``disk.used``,
  ``sent_at`` (Unix time). Heartbeat messages expire after 10 intervals (min 60 s).
- Snapshot ``volumes`` entries also carry ``anonymous``; ``containers`` lists every container
  of the host, those without a uid label too (uid "").
- Events: only for containers with a uid label; at least once (an agent killed between sending
  and recording repeats it after its restart; exits that happened while it was down are sent
  then). ``restarted`` = started again by the restart policy, or started again without the
  exit being seen; ``oom`` comes right before its ``exited``.
"""

from __future__ import annotations

from typing import Any

from runtime.protocol.container import (
    LEGACY_HASH_FIELDS,
    ContainerSpec,
    FieldInfo,
    SpecInvalid,
    check_formats,
    default_of,
    field_info,
    field_names,
    hash_form,
    is_default,
    spec_fields,
)

__all__ = ["LEGACY_HASH_FIELDS", "ContainerSpec", "FieldInfo", "SpecInvalid", "check_formats",
           "default_of", "field_info", "field_names", "hash_form", "is_default", "spec_fields",
           "CONTROL_QUEUE", "UID_LABEL", "GENERATION_LABEL", "PORT_GROUP_LABEL",
           "AGENT_TASK_PREFIX", "CONTROL_TASK_PREFIX", "PENDING", "RUNNING", "SUCCEEDED",
           "FAILED", "EVENTS", "ENVELOPE_FIELDS", "host_queue", "agent_task", "control_task",
           "container_state"]

# keys of an apply_container spec that are about the message, not the container
ENVELOPE_FIELDS = ("uid", "generation", "desired", "network_specs", "registry_credentials")

CONTROL_QUEUE = "control"
UID_LABEL = "berth.uid"
GENERATION_LABEL = "berth.generation"
PORT_GROUP_LABEL = "berth.port_group"  # the spec's `port_group`, kept on the container

AGENT_TASK_PREFIX = "berth.agent."
CONTROL_TASK_PREFIX = "berth.control."

# operation statuses
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"

# container events
EVENTS = ("created", "started", "exited", "oom", "health", "restarting", "restarted",
          "removed")


def host_queue(host_name: str) -> str:
    """The queue a host's agent consumes."""
    return f"host.{host_name}"


def agent_task(name: str) -> str:
    return AGENT_TASK_PREFIX + name


def control_task(name: str) -> str:
    return CONTROL_TASK_PREFIX + name


def container_state(container: Any) -> dict[str, Any]:
    """What the panel records as observed state of one runtime container."""
    state = container.state
    health = state.get("Health") or {}
    return {
        "uid": container.labels.get(UID_LABEL, ""),
        "runtime_id": container.id,
        "name": container.name,
        "created": getattr(container, "created", "") or "",
        "image_id": container.image_id,
        "status": state.get("Status", ""),
        "pid": state.get("Pid", 0),
        "exit_code": state.get("ExitCode", 0),
        "oom_killed": bool(state.get("OOMKilled")),
        "health": health.get("Status", ""),
        "started_at": state.get("StartedAt", ""),
        "finished_at": state.get("FinishedAt", ""),
        "restart_count": container.restart_count,
        "generation": int(container.labels.get(GENERATION_LABEL, "0") or 0),
        "addresses": _addresses(container),
        "ports": _ports(container),
        "error": state.get("Error", ""),
        "stop_note": state.get("StopNote", ""),
    }


def _addresses(container: Any) -> dict[str, str]:
    networks = (getattr(container, "network_settings", None) or {}).get("Networks") or {}
    if not networks:
        networks = (container.to_json().get("NetworkSettings") or {}).get("Networks") or {}
    return {name: (info or {}).get("IPAddress", "") for name, info in networks.items()}


def _ports(container: Any) -> dict[str, Any]:
    settings = getattr(container, "network_settings", None) or container.to_json().get(
        "NetworkSettings") or {}
    return dict(settings.get("Ports") or {})
