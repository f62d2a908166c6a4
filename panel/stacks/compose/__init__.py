"""Compose files in Berth: the supported subset of the Compose Specification.

A stack is defined by one compose file. Berth reads it with YAML 1.2 rules (as Compose does:
`no`, `on` and `22:22` are strings), substitutes variables from the stack's environment, and
resolves it into a `StackSpec`. Whatever the file asks for that Berth cannot do exactly is
refused with the key's path, line and column and what to use instead; nothing is ignored.
Every problem in a file is reported at once:
``[{"path": "services.web.ports[0]", "line": 7, "column": 9, "message": "…"}, …]``.

    spec = parse_compose(text, stack_name="shop", environment={"TAG": "1.4"},
                         allow_bind_mounts=actor_is_platform_admin)   # or ComposeError
    text = export_compose(spec)                  # reads back to the same spec
    service_spec_hash(spec.services["web"])      # unchanged hash: nothing to redeploy

Top level
---------
``services`` (required, at least one), ``volumes``, ``networks``, ``name`` (the stack name
when the caller gives none; the caller's name wins, like ``docker compose -p``), ``version``
(accepted and ignored, as Compose does), ``secrets`` and ``configs`` (files.py: from the
stack's uploaded files, its secrets or inline content), and ``x-`` extension fields;
``include`` is refused. Service names use letters, digits, ``.``, ``_``, ``-``.

The table below lists the core service keys; README.md's Stacks section lists every key read
(host options in host_options.py, relations in relations.py, files in files.py).

Services
--------
============================  ===============================================================
``image``                     required; ``build`` is refused (push the image to a registry)
``pull_policy``               ``missing`` (default) or ``never``
``command``, ``entrypoint``   a list, or a string split into words as a shell would
``environment``               mapping or ``["K=V"]`` list; a bare ``K`` takes the stack's value
``ports``                     ``"[IP:][HOST:]CTR[/tcp|udp]"``, ranges ``"8000-8001:80-81"``,
                              or ``{target, published, host_ip, protocol, mode}``
``volumes``                   ``"NAME:/path[:ro|rw][,nocopy]"``, ``"/path"`` (anonymous), or
                              ``{type: volume|bind, source, target, read_only, volume:
                              {nocopy}}``; ``NAME`` must be declared under top-level
                              ``volumes``; bind mounts (absolute host paths) for platform
                              admins only
``networks``                  a list of names, or ``{name: {aliases: [...]}}``
``depends_on``                a list, or ``{service: {condition: service_started |
                              service_healthy}}`` (``service_healthy`` needs a
                              ``healthcheck`` on that service)
``healthcheck``               ``test`` (string = ``CMD-SHELL``, or ``["CMD", …]``,
                              ``["CMD-SHELL", "…"]``, ``["NONE"]``), ``interval``,
                              ``timeout``, ``start_period``, ``start_interval``,
                              ``retries``, ``disable``
``restart``                   ``no``, ``always``, ``on-failure[:N]``, ``unless-stopped``
``init``, ``read_only``       true or false
``user``                      ``USER``, ``UID`` or ``UID:GID``
``working_dir``               an absolute path
``hostname``                  a DNS name
``labels``                    mapping or ``["K=V"]`` list; ``berth.*`` is reserved
``stop_signal``               ``TERM``, ``SIGQUIT``, ``9`` …
``stop_grace_period``         a duration (rounded up to whole seconds)
``deploy.mode``               ``replicated`` only
``deploy.replicas``           0 or more (default 1); replicas share the published ports
``deploy.resources.limits``   ``cpus`` (0.01–1024), ``memory`` (at least ``6m``), ``pids``
``deploy.placement``          ``constraints``: ``node.labels.KEY==VALUE``, ``KEY==VALUE``,
                              ``!=`` likewise (Berth hosts' labels)
``deploy.update_config``      ``parallelism`` (1; 0 = all at once), ``delay`` (0s),
                              ``order`` (``stop-first`` | ``start-first``),
                              ``failure_action`` (``pause`` | ``rollback`` | ``continue``),
                              ``monitor`` (5s) — defaults as in Compose/Swarm
============================  ===============================================================

Refused with advice: ``build``, ``volumes_from``, ``mem_limit``/``cpus``/``pids_limit`` (use
``deploy.resources.limits``), ``scale`` (use ``deploy.replicas``), ``tty``, the cgroup,
user-namespace and CPU tuning keys; any other key is refused with the list of allowed keys.

Top-level ``volumes`` and ``networks``
--------------------------------------
A volume or network ``KEY`` is created as ``<stack>_KEY`` unless ``name:`` says otherwise;
``external: true`` uses an existing one called ``KEY`` (or ``name:``) and is never created or
removed. Volumes: ``driver: local``, ``labels``. Networks: ``driver: bridge``, ``internal``,
``labels``, ``ipam: {config: [{subnet, gateway}]}`` (one IPv4 subnet). Services that list no
networks join ``default``, the network ``<stack>_default`` (declare ``networks: default:`` to
change it), and every service is reachable by its service name on its networks.

Values
------
Durations are Go-style (``1m30s``, ``10s``, ``500ms``) or a number of seconds; sizes are
bytes or a number with ``b``, ``k``, ``m``, ``g`` (``256m``, ``1g``, ``512M``).
Interpolation: ``${VAR}`` and ``$VAR`` (VAR must be set), ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``, ``${VAR:+other}``,
``${VAR+other}``, ``$$`` for a literal ``$``; keys are not interpolated. Interpolated text
becomes a number or boolean where one is expected (``replicas: ${N}``). YAML anchors, aliases
and merge keys (``<<: *defaults``) work everywhere, typically with ``x-`` fields.

Also refused: malformed YAML, duplicate keys, custom YAML tags, unknown services in
``depends_on``, dependency cycles (named: ``a -> b -> a``), undeclared volumes or networks,
a host port published by two services, invalid image references, durations, sizes and names.
"""

from panel.stacks.compose.errors import ComposeError, Issue
from panel.stacks.compose.export import export_compose
from panel.stacks.compose.resolve import parse_compose
from panel.stacks.compose.spec import (
    NetworkSpec,
    ServiceSpec,
    StackSpec,
    VolumeSpec,
    container_spec_hash,
    service_spec_hash,
)

__all__ = [
    "ComposeError",
    "Issue",
    "NetworkSpec",
    "ServiceSpec",
    "StackSpec",
    "VolumeSpec",
    "container_spec_hash",
    "export_compose",
    "parse_compose",
    "service_spec_hash",
]
