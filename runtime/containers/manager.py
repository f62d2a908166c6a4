"""ContainerManager: create, start, stop, kill, restart, remove, wait and exec containers.

The manager holds no per-container process: state lives in each container's JSON record and in
the files conmon writes (pid, exit code, oom), so a new manager in a new process sees exactly
what the previous one left, including containers that exited in between (their exit is noticed
and cleaned up the next time anything looks at them: `refresh`).

Seams for the supervisor (restart policies, health-check scheduling):
- `exit_hooks`: callables run once per observed exit, after cleanup, with the container record;
- `start_hooks`: callables run after each start, with the running container's record;
- `on_exit(ref)`: observe a container's exit now (what conmon's `--exit-command` would call);
- `start(ref, restarting=True)`: a policy restart (counts RestartCount, keeps the stop flag);
- `run_healthcheck(ref)`: one probe and Docker's health state transition (health.py).
"""

from __future__ import annotations

import builtins
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.containers import kernel_options as kopts
from runtime.containers import monitor, rootfs
from runtime.containers import options as opts
from runtime.containers.cgroups import cgroups_path, remove_empty_cgroup_parents
from runtime.containers.health import check_test, run_healthcheck
from runtime.containers.network import LoopbackOnly, NetworkProvider, hosts_file
from runtime.containers.ociruntime import OCIRuntime, exec_failure_code, select_runtime
from runtime.containers.record import (
    CREATED,
    EXITED,
    RESTARTING,
    RUNNING,
    ZERO_TIME,
    Container,
    ContainerStore,
    new_state,
    now_iso,
)
from runtime.containers.spec import bind_mount, build_spec
from runtime.containers.stopnote import stop_note
from runtime.containers.users import resolve_groups, resolve_user
from runtime.errors import (
    BerthError,
    Conflict,
    ContainerNotRunning,
    InvalidArgument,
    NotFound,
    RuntimeFailure,
)

if TYPE_CHECKING:
    from runtime.containers.stats import Stats
    from runtime.host import Host

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KILL_GRACE = 10.0  # how long to wait for SIGKILL to take effect
DRAIN_SECONDS = 0.05  # a port-group replica leaving: packets already routed to it arrive
DRAIN_POLL = 0.02  # then how often its open connections are counted until they closed
_WIRING = ThreadPoolExecutor(4, thread_name_prefix="berth-wire")


class ContainerManager:
    """All containers of one runtime root (`host.containers`)."""

    def __init__(self, host: Host):
        self.host = host
        self.root = Path(host.root)
        self.store: ContainerStore = ContainerStore(self.root)
        self.network: NetworkProvider = _default_network(host)
        # conmon's --exit-command for every container (the container id is appended)
        self.exit_command: builtins.list[str] | None = None
        self.log_size_max: int | None = None
        self.exit_hooks: builtins.list[Callable[[Container], None]] = []
        self.start_hooks: builtins.list[Callable[[Container], None]] = []

    # -- runtime -----------------------------------------------------------------------------
    def runtime_for(self, container: Container) -> OCIRuntime:
        """The OCI runtime the container was created with, with this root's state dir."""
        return OCIRuntime(container.runtime, self.root / "oci" / os.path.basename(
            container.runtime))

    def default_runtime(self) -> str:
        """The runtime new containers use (crun if this host's cgroups allow it, else runc)."""
        return select_runtime(self.root)

    # -- lookup ------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """A container by id, id prefix or name, with its state brought up to date."""
        return self.refresh(self.store.find(ref))

    def list(self, all: bool = False, labels: dict[str, str | None] | None = None,
             ) -> builtins.list[Container]:
        """Running containers (or all with `all`), newest first, optionally filtered by
        labels (`{"k": "v"}` matches k=v, `{"k": None}` matches any value of k)."""
        found = []
        for container in self.store.all():
            try:
                container = self.refresh(container)
            except NotFound:
                continue  # removed while we listed (a concurrent `rm -f` finalised its exit)
            if not all and not (container.running or container.status == RESTARTING):
                continue
            if labels and not _labels_match(container.labels, labels):
                continue
            found.append(container)
        return sorted(found, key=lambda c: c.created, reverse=True)

    def users_of_image(self, image_id: str) -> builtins.list[str]:
        """Names of the containers created from `image_id` (any state)."""
        return sorted(c.name for c in self.store.all() if c.image_id == image_id)

    def users_of_volume(self, name: str) -> builtins.list[str]:
        """Names of the containers that mount volume `name` (any state)."""
        return sorted(c.name for c in self.store.all()
                      if any(m.get("Type") == "volume" and m.get("Name") == name
                             for m in c.mounts))

    # -- create ------------------------------------------------------------------------------
    def create(self, options: opts.RunOptions) -> Container:
        """Create a container (docker `create`): validated config, record, volumes, files.
        Nothing runs yet. Any failure leaves nothing behind."""
        return self._create(options)[0]

    def run(self, options: opts.RunOptions) -> Container:
        """Create and start; if the start fails, everything `create` made is removed again."""
        container, created_volumes = self._create(options)
        try:
            return self.start(container.id)
        except BaseException:
            self._discard(container, created_volumes)
            raise

    def _create(self, options: opts.RunOptions) -> tuple[Container, builtins.list[str]]:
        image = self.host.images.get(options.image)
        config, host_config, requests = self._build_config(options, image)
        network_settings = self._configure_network(options, config, host_config)
        ipc_owner = kopts.joined_container(host_config["IpcMode"])
        if ipc_owner is not None:
            host_config["IpcMode"] = f"container:{self._joined(ipc_owner, 'ipc', options).name}"
        layer_dirs = image.layer_dirs()
        user = resolve_user(config.get("User") or "", layer_dirs)
        resolve_groups(list(host_config.get("GroupAdd") or []), layer_dirs)
        if host_config["Init"] and _tini() is None:
            raise RuntimeFailure("--init needs tini; run `make setup` (apt-get install tini)")
        runtime_path = self.default_runtime()
        container_id = secrets.token_hex(32)
        if not config.get("Hostname"):
            # docker: the host's name with --network host, else the short id
            config["Hostname"] = (socket.gethostname() if host_config.get("NetworkMode") == "host"
                                  else container_id[:12])
        config["Env"] = _default_env(config["Env"], config["Hostname"], user.home)
        requested = opts.validate_name(options.name) if options.name else None
        with self.store.lock():
            if requested is not None:
                name = requested
            else:
                from runtime.containers.names import generate_name

                name = generate_name(_TakenNames(self.store))
            self.store.claim_name(name, container_id)  # Conflict if taken
            directory = self.store.directory(container_id)
            container = Container(
                id=container_id, name=name, created=now_iso(), image_id=image.id,
                image_ref=options.image, config=config, host_config=host_config, mounts=[],
                runtime=runtime_path, directory=directory,
                network_settings=network_settings,
            )
            try:
                directory.mkdir(parents=True)
                self.store.save(container)
            except BaseException:
                import shutil

                shutil.rmtree(directory, ignore_errors=True)
                self.store.release_name(container, locked=True)
                raise
        created_volumes: builtins.list[str] = []
        try:
            container.mounts = self._prepare_mounts(requests, config, created_volumes)
            for sub in ("bundle/rootfs", "upper", "work", "userdata"):
                (directory / sub).mkdir(parents=True, exist_ok=True)
            self.store.save(container)
        except BaseException:
            self._discard(container, created_volumes)
            raise
        return container, created_volumes

    def _configure_network(self, options: opts.RunOptions, config: dict[str, Any],
                           host_config: dict[str, Any]) -> dict[str, Any]:
        """NetworkMode and NetworkSettings at create time: another container's network
        (`container:NAME`, which must exist), else the provider's (`host`/`none` are its
        special networks)."""
        mode = host_config["NetworkMode"]
        owner_name = kopts.joined_container(mode)
        if owner_name is not None:
            owner = self._joined(owner_name, "network_mode", options)
            host_config.update(NetworkMode=f"container:{owner.name}", PublishAllPorts=False,
                               PortBindings={})
            config["Hostname"] = owner.config.get("Hostname") or owner.short_id
            return {"Networks": {}, "Ports": {}, "SandboxKey": ""}
        if mode in ("host", "none"):
            options = replace(options, networks=[mode])
        settings = self.network.configure(options, config, host_config)
        if not host_config.get("NetworkMode"):  # a provider without networks: loopback only
            host_config["NetworkMode"] = "none"
        return settings

    def _joined(self, name: str, field: str, options: opts.RunOptions) -> Container:
        """The container a `container:NAME` mode names (it must exist, and not be this one)."""
        if options.name and name == opts.validate_name(options.name):
            raise InvalidArgument(f"{field} container:{name} names the container itself: "
                                  "name another container")
        try:
            owner = self.store.find(name)
        except NotFound:
            raise NotFound(f"{field} container:{name}: there is no container {name!r}; create "
                           "it first") from None
        if field == "ipc" and owner.host_config.get("IpcMode") != "shareable":
            raise InvalidArgument(f"ipc container:{name}: {name}'s IPC namespace is private; "
                                  f"create {name} with ipc shareable so others may join it")
        if kopts.joined_container(owner.host_config.get("NetworkMode") or "") and (
                field == "network_mode"):
            raise InvalidArgument(f"{field} container:{name}: {name} itself uses another "
                                  "container's network; join that one")
        return owner

    def _build_config(self, options: opts.RunOptions, image: Any,
                      ) -> tuple[dict[str, Any], dict[str, Any], builtins.list[opts.MountRequest]]:
        """Docker's Config and HostConfig from the image config and the options (all parsing
        happens here, before anything is created)."""
        image_config = image.runtime_config
        memory = opts.parse_memory(options.memory)
        nano_cpus = opts.parse_cpus(options.cpus)
        pids_limit = opts.parse_pids_limit(options.pids_limit)
        restart = opts.parse_restart(options.restart)
        if restart["Name"] != "no" and options.auto_remove:
            raise InvalidArgument("--restart and --rm cannot be combined: pick one")
        labels = {**(image_config.get("Labels") or {}), **opts.parse_labels(options.labels)}
        env_overrides = [e for path in options.env_files for e in opts.read_env_file(path)]
        env_overrides += [e for e in (opts.parse_env_entry(x) for x in options.env) if e]
        requests = [opts.parse_volume(v) for v in options.volumes]
        destinations = [r.destination for r in requests]
        if len(set(destinations)) != len(destinations):
            raise InvalidArgument(f"duplicate mount point in -v: {sorted(destinations)}")
        if options.entrypoint is not None:
            entrypoint = opts.parse_command(options.entrypoint)
            cmd = list(options.command)
        else:
            entrypoint = list(image_config.get("Entrypoint") or [])
            cmd = list(options.command) or list(image_config.get("Cmd") or [])
        if not entrypoint and not cmd:
            raise InvalidArgument(
                f"no command specified: image {options.image!r} has no Entrypoint or Cmd; "
                "give a command after the image name"
            )
        workdir = options.workdir if options.workdir is not None else image_config.get(
            "WorkingDir") or ""
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(f"invalid --workdir {workdir!r}: it must be an absolute path")
        stop_signal = options.stop_signal or image_config.get("StopSignal") or "SIGTERM"
        opts.parse_signal(stop_signal)
        if options.stop_timeout is not None and options.stop_timeout < 0:
            raise InvalidArgument("--stop-timeout must be 0 or more seconds")
        health = _healthcheck(options.health, image_config.get("Healthcheck"))
        kernel = kopts.host_options(options, memory)
        exposed = kernel.pop("ExposedPorts")
        tmpfs_paths = set(kernel["Tmpfs"])
        if tmpfs_paths & set(destinations):
            raise InvalidArgument(f"tmpfs {sorted(tmpfs_paths & set(destinations))[0]} is also "
                                  "a volume's mount point: use one of them")
        seccomp_file = kopts.security_settings(kernel["SecurityOpt"] or []).get("seccomp", "")
        if seccomp_file.startswith("/"):
            kernel["SeccompProfile"] = kopts.load_seccomp_profile(seccomp_file)
        config = {
            "Hostname": options.hostname or "", "User": options.user
            if options.user is not None else image_config.get("User") or "",
            "Env": opts.merge_env(list(image_config.get("Env") or []), env_overrides),
            "Cmd": cmd, "Entrypoint": entrypoint or None, "WorkingDir": workdir,
            "Image": options.image, "Labels": labels, "StopSignal": stop_signal,
            "StopTimeout": options.stop_timeout,
            "ExposedPorts": {**dict(image_config.get("ExposedPorts") or {}), **exposed},
            "Volumes": dict(image_config.get("Volumes") or {}),
            "Healthcheck": health,
        }
        host_config = {
            "Binds": list(options.volumes), "Memory": memory, "NanoCpus": nano_cpus,
            "PidsLimit": pids_limit, "RestartPolicy": restart, "Init": bool(options.init),
            "ReadonlyRootfs": bool(options.read_only), "AutoRemove": bool(options.auto_remove),
            "Runtime": "", **kernel,
        }
        return config, host_config, requests

    def _prepare_mounts(self, requests: builtins.list[opts.MountRequest], config: dict[str, Any],
                        created_volumes: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """Docker-shaped Mounts: binds (must exist), named volumes (created if missing, as
        docker does) and anonymous volumes for the image's Volumes not covered by `-v`."""
        mounts = []
        wanted = list(requests)
        covered = {r.destination for r in requests}
        for path in config.get("Volumes") or {}:
            normalised = os.path.normpath(path)
            if normalised not in covered:
                wanted.append(opts.MountRequest(source="", destination=normalised))
        for request in wanted:
            if request.is_bind:
                source = Path(request.source)
                if not source.exists():
                    raise InvalidArgument(
                        f"bind mount source path does not exist: {request.source} "
                        f"(-v {request.source}:{request.destination}); create it first"
                    )
                mounts.append({"Type": "bind", "Source": str(source),
                               "Destination": request.destination,
                               "Mode": "ro" if request.read_only else "",
                               "RW": not request.read_only, "Propagation": "rprivate"})
                continue
            volumes = self.host.volumes
            anonymous = not request.source
            if anonymous:
                volume = volumes.create(anonymous=True)
                created_volumes.append(volume.name)
            else:
                try:
                    volume = volumes.get(request.source)
                except NotFound:
                    volume = volumes.create(name=request.source)
                    created_volumes.append(volume.name)
            mounts.append({"Type": "volume", "Name": volume.name,
                           "Source": str(volume.mountpoint), "Destination": request.destination,
                           "Driver": "local", "Mode": "ro" if request.read_only else "z",
                           "RW": not request.read_only, "Propagation": "",
                           "Anonymous": anonymous, "NoCopy": request.no_copy})
        return mounts

    def _discard(self, container: Container, created_volumes: builtins.list[str]) -> None:
        """Roll back a create: the record, its directory, and volumes it created."""
        self._teardown(container)
        self.network.removed(container)
        self.store.remove(container)
        for name in created_volumes:
            try:
                self.host.volumes.remove(name, users=self.users_of_volume)
            except BerthError:
                pass

    # -- start -------------------------------------------------------------------------------
    def start(self, ref: str, restarting: bool = False) -> Container:
        """Start a created or exited container; a running one is left as it is.

        `restarting=True` is a restart-policy start: it counts in RestartCount and does not
        clear the manual-stop flag."""
        container = self.store.find(ref)
        with self.store.lock(container.id):
            container = self._reload(container)
            if container.running:
                return container
            if container.status != CREATED or container.state.get("Error"):
                self._teardown(container)  # normally done at exit; this covers a crash
            self._start_locked(container, restarting)
        for hook in list(self.start_hooks):
            hook(container)
        return container

    def _start_locked(self, container: Container, restarting: bool) -> None:
        runtime = self.runtime_for(container)
        image_layers = self.host.images.get(container.image_id).layer_dirs()
        for stale in (self.store.exit_dir / container.id, container.oom_file, container.pidfile,
                      container.userdata / "exit"):
            stale.unlink(missing_ok=True)
        self.store.exit_dir.mkdir(parents=True, exist_ok=True)
        socket_dir = monitor.short_socket_dir(self.root)
        socket_dir.mkdir(parents=True, exist_ok=True)
        rootfs.mount_overlay(image_layers, container.directory / "upper",
                             container.directory / "work", container.rootfs)
        try:
            if container.host_config.get("IpcMode") == "shareable":
                shm = container.directory / "shm"
                shm.mkdir(exist_ok=True)
                rootfs.mount_shm(shm, int(container.host_config.get("ShmSize")
                                          or kopts.DEFAULT_SHM_SIZE))
            self._populate_volumes(container)
            network_owner = self._namespace_owner(container, "NetworkMode")
            if network_owner is not None:
                namespace: str | None = f"/proc/{network_owner.state['Pid']}/ns/net"
            else:
                namespace = self.network.prepare(container)
            self._write_bundle(container, image_layers, namespace, network_owner)
            # the interfaces are wired while conmon has the runtime create the container
            wiring = _WIRING.submit(self.network.wire if network_owner is None else _no_wiring,
                                    container)
            try:
                if kopts.interface_sysctls(container.host_config.get("Sysctls") or {}):
                    wiring.result()  # the runtime sets them at create: the interfaces first
                # the container's max-size, within the host's own limit when it has one
                limits = [size for size in (kopts.log_size_max(
                    container.host_config.get("LogConfig") or {}), self.log_size_max) if size]
                pid = monitor.launch(container, runtime, self.store.exit_dir, socket_dir,
                                     self._exit_command(container),
                                     min(limits) if limits else None)
            except BaseException:
                wiring.exception()  # finished before the teardown undoes it
                raise
            wiring.result()
            runtime.start(container.id, pid)
        except BaseException as exc:
            self._teardown(container)
            container.state["Error"] = str(exc)
            self.store.save(container)
            if isinstance(exc, RuntimeFailure):
                _set_exec_exit_code(exc)
            raise
        state = container.state
        state.update(Status=RUNNING, Running=True, Paused=False, Restarting=False,
                     OOMKilled=False, Dead=False, Pid=pid,
                     ConmonPid=monitor.read_int(container.conmon_pidfile) or 0, ExitCode=0,
                     Error="", StartedAt=now_iso(), FinishedAt=ZERO_TIME)
        state.pop("StopNote", None)
        if container.healthcheck:
            state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
        else:
            state.pop("Health", None)
        if restarting:
            container.restart_count += 1
        else:
            container.manually_stopped = False
        self.store.save(container)
        self.network.attached(container, pid)

    def _populate_volumes(self, container: Container) -> None:
        """Docker's copy-up, at each start as Docker does it: an empty volume gets what the
        image has at its mount path (`nocopy` turns it off)."""
        for mount in container.mounts:
            if mount.get("Type") == "volume" and not mount.get("NoCopy"):
                self.host.volumes.populate(mount["Name"], container.rootfs, mount["Destination"])

    def _namespace_owner(self, container: Container, key: str) -> Container | None:
        """The running container whose namespace `container` joins (HostConfig NetworkMode
        or IpcMode `container:NAME`), or None when it has its own (or the host's)."""
        name = kopts.joined_container(str(container.host_config.get(key) or ""))
        if name is None:
            return None
        field = "network_mode" if key == "NetworkMode" else "ipc"
        try:
            owner = self.store.find(name)
        except NotFound:
            raise NotFound(f"{container.name} uses {field} container:{name}, but there is no "
                           f"container {name!r} any more; create it, or recreate "
                           f"{container.name} without it") from None
        if not owner.running or not monitor.process_alive(owner.state.get("Pid")):
            raise ContainerNotRunning(f"{container.name} joins the namespace of container "
                                      f"{name} ({field} container:{name}), which is not "
                                      f"running; start {name} first")
        return owner

    def _write_bundle(self, container: Container, layer_dirs: builtins.list[Path],
                      namespace: str | None, network_owner: Container | None = None) -> None:
        import json

        host_config = container.host_config
        user = resolve_user(container.config.get("User") or "", layer_dirs)
        for gid in resolve_groups(list(host_config.get("GroupAdd") or []), layer_dirs):
            if gid not in user.additional_gids:
                user.additional_gids.append(gid)
        hostname = container.config.get("Hostname") or container.short_id
        read_only = bool(host_config.get("ReadonlyRootfs"))
        extra = []
        files = {"hostname": hostname + "\n"}
        if network_owner is None:
            files["hosts"] = hosts_file(container, hostname, [
                *self.network.hosts_entries(container), *self._extra_hosts(container)])
            files["resolv.conf"] = kopts.resolv_conf(
                self.network.resolv_conf(container), list(host_config.get("Dns") or []),
                list(host_config.get("DnsSearch") or []),
                list(host_config.get("DnsOptions") or []))
        else:  # the network's owner's own files, as docker shares them
            for filename in ("hosts", "resolv.conf"):
                extra.append(bind_mount(network_owner.directory / filename, f"/etc/{filename}",
                                        read_only))
        for filename, content in files.items():
            (container.directory / filename).write_text(content)
            extra.append(bind_mount(container.directory / filename, f"/etc/{filename}",
                                    read_only))
        volume_mounts = sorted(container.mounts, key=lambda m: m["Destination"].count("/"))
        for mount in volume_mounts:
            extra.append(bind_mount(mount["Source"], mount["Destination"], not mount["RW"]))
        ipc_owner = self._namespace_owner(container, "IpcMode")
        ipc_namespace = shm_source = None
        if ipc_owner is not None:
            ipc_namespace = f"/proc/{ipc_owner.state['Pid']}/ns/ipc"
            shm_source = str(ipc_owner.directory / "shm")
        elif host_config.get("IpcMode") == "shareable":
            shm_source = str(container.directory / "shm")
        elif host_config.get("IpcMode") == "host":
            shm_source = "/dev/shm"
        spec = build_spec(container.id, container.config, host_config, user, extra,
                          namespace, cgroups_path(container), ipc_namespace, shm_source)
        (container.bundle / "config.json").write_text(json.dumps(spec))

    def _extra_hosts(self, container: Container) -> builtins.list[str]:
        """/etc/hosts lines of HostConfig.ExtraHosts (`host-gateway`: the primary network's
        gateway; with the host's network, the host itself)."""
        lines = []
        for entry in container.host_config.get("ExtraHosts") or []:
            name, _, address = entry.partition(":")
            if address == kopts.HOST_GATEWAY:
                address = self._gateway(container)
            lines.append(f"{address}\t{name}")
        return lines

    @staticmethod
    def _gateway(container: Container) -> str:
        mode = container.host_config.get("NetworkMode") or ""
        if mode == "host":
            return "127.0.0.1"
        networks: dict[str, Any] = (container.network_settings or {}).get("Networks") or {}
        primary: dict[str, Any] = networks.get(mode) or {}
        gateway = primary.get("Gateway") or next(
            (e.get("Gateway") for e in networks.values() if e and e.get("Gateway")), "")
        if not gateway:
            raise InvalidArgument(f"extra_hosts host-gateway: container {container.name}'s "
                                  "network has no gateway; use an address instead")
        return str(gateway)

    # -- observe -----------------------------------------------------------------------------
    def refresh(self, container: Container) -> Container:
        """Bring the record up to date with conmon's files; an exit seen for the first time
        is finalised (runtime state, mounts and network released, hooks run)."""
        if not container.running or not self.has_exited(container):
            return container
        with self.store.lock(container.id):
            current = self._reload(container)
        return current

    def on_exit(self, ref: str) -> Container:
        """Observe the container's exit now (conmon's --exit-command, supervisors). The record
        is re-read under the container's lock, so an exit that races with the end of `start`
        is still finalised (and an `--rm` container removed)."""
        container = self.store.find(ref)
        with self.store.lock(container.id):
            return self._reload(container)

    def _exit_command(self, container: Container) -> builtins.list[str] | None:
        """What conmon runs once the container has exited: the manager's `exit_command` if
        set, else for an `--rm` container `berth-runtime cleanup ID`, so it is removed at once
        even when no supervisor or agent is watching."""
        if self.exit_command is not None:
            return [*self.exit_command, container.id]
        if container.host_config.get("AutoRemove"):
            return [sys.executable, "-m", "runtime", "--root", str(self.root), "cleanup",
                    container.id]
        return None

    def has_exited(self, container: Container) -> bool:
        """Whether a container recorded as running has stopped (conmon wrote its exit code,
        or conmon and the container are both gone)."""
        if monitor.exit_code(container, self.store.exit_dir) is not None:
            return True
        conmon_pid = container.state.get("ConmonPid") or 0
        return not monitor.process_alive(conmon_pid) and not monitor.process_alive(
            container.state.get("Pid"))

    def _reload(self, container: Container) -> Container:
        """Re-read the record (under the container lock) and finalise an exit if one
        happened."""
        current = self.store.load(container.id)
        if current is None:
            raise NotFound(f"container {container.short_id} was removed meanwhile")
        if current.running and self.has_exited(current):
            self._finalise_exit(current)
        return current

    def _finalise_exit(self, container: Container) -> None:
        code = monitor.exit_code(container, self.store.exit_dir)
        exit_file = self.store.exit_dir / container.id
        finished = (datetime.fromtimestamp(exit_file.stat().st_mtime, UTC)
                    .strftime("%Y-%m-%dT%H:%M:%S.%f000Z") if code is not None else now_iso())
        oom = monitor.oom_killed(container)
        container.state.update(
            Status=EXITED, Running=False, Paused=False, Restarting=False, Pid=0, ConmonPid=0,
            ExitCode=code if code is not None else 255, OOMKilled=oom, FinishedAt=finished,
            Error="" if code is not None else "conmon exited without recording an exit code",
        )
        if "Health" in container.state:
            container.state["Health"]["Status"] = "unhealthy"  # as docker marks a stopped one
        self._teardown(container)
        self.store.save(container)
        for hook in list(self.exit_hooks):
            hook(container)
        if container.host_config.get("AutoRemove"):
            self.network.removed(container)
            self.store.remove(container)
            self._remove_anonymous_volumes(container)

    def _teardown(self, container: Container) -> None:
        """Release what a run holds: the runtime's state and cgroups, the rootfs mount, the
        network. Idempotent."""
        try:
            self.runtime_for(container).delete(container.id)
        finally:
            rootfs.unmount(container.rootfs)
            rootfs.unmount(container.directory / "shm")  # a shareable /dev/shm
            self.network.release(container)

    def _wait_exit(self, container: Container, timeout: float) -> bool:
        """Poll conmon's exit file (a few ms at first, then 20 ms) for at most `timeout`."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if self.has_exited(container):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # -- stop, kill, restart, rm, wait ------------------------------------------------------
    def stop(self, ref: str, timeout: int | None = None) -> Container:
        """The image's StopSignal (SIGTERM by default), then SIGKILL after `timeout` seconds
        (the container's --stop-timeout, else 10)."""
        container = self.store.find(ref)
        with self.store.lock(container.id):
            container = self._reload(container)
            container.manually_stopped = True
            if container.status == RESTARTING:  # the back-off ends: it stays exited
                container.state.update(Status=EXITED, Restarting=False)
            self.store.save(container)
            if not container.running:
                return container
            if timeout is None:
                timeout = container.config.get("StopTimeout")
            if timeout is None:
                timeout = opts.DEFAULT_STOP_TIMEOUT
            drained = self._leave_port_group(container, float(timeout))
            runtime = self.runtime_for(container)
            signal = opts.parse_signal(container.config.get("StopSignal") or "SIGTERM")
            try:
                runtime.kill(container.id, signal)
            except ContainerNotRunning:
                pass
            if not self._wait_exit(container, max(0.0, float(timeout) - drained)):
                # Recorded before the kill, so whoever finalises the exit keeps it.
                container.state["StopNote"] = stop_note(
                    int(container.state.get("Pid") or 0), signal, float(timeout),
                    bool(container.host_config.get("Init")))
                self.store.save(container)
                self._kill_and_wait(container, runtime)
            return self._reload(container)

    def _leave_port_group(self, container: Container, grace: float | None = None) -> float:
        """A replica sharing a published port stops taking new connections before it is
        signalled, then drains: it gets DRAIN_SECONDS for packets already on their way, and
        until the TCP connections to its addresses closed (conntrack), at most `grace` seconds
        (its stop timeout). Returns the seconds spent (0 for a container outside a group)."""
        set_serving = getattr(self.network, "set_serving", None)
        if set_serving is None or not set_serving(container, False):
            return 0.0
        from runtime.network.filtering import open_connections

        if grace is None:
            stop_timeout = container.config.get("StopTimeout")
            grace = float(opts.DEFAULT_STOP_TIMEOUT if stop_timeout is None else stop_timeout)
        networks = (container.network_settings or {}).get("Networks") or {}
        addresses = {str((info or {}).get("IPAddress")) for info in networks.values()
                     if (info or {}).get("IPAddress")}
        began = time.monotonic()
        time.sleep(DRAIN_SECONDS)
        while open_connections(addresses) and time.monotonic() - began < grace:
            time.sleep(DRAIN_POLL)
        return time.monotonic() - began

    def _kill_and_wait(self, container: Container, runtime: OCIRuntime) -> None:
        try:
            runtime.kill(container.id, 9)
        except ContainerNotRunning:
            pass
        if not self._wait_exit(container, KILL_GRACE):
            raise RuntimeFailure(
                f"container {container.name} did not exit after SIGKILL within {KILL_GRACE:g}s"
            )

    def kill(self, ref: str, signal: str | int = "KILL") -> Container:
        """Send a signal to the container's init process (docker `kill -s`)."""
        number = opts.parse_signal(signal)
        container = self.store.find(ref)
        with self.store.lock(container.id):
            container = self._reload(container)
            if not container.running:
                raise ContainerNotRunning(
                    f"container {container.name} is not running; `start` it first"
                )
            self.runtime_for(container).kill(container.id, number)
            if number == 9:
                self._wait_exit(container, KILL_GRACE)
            return self._reload(container)

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        """Stop (with the usual timeout) and start again."""
        container = self.stop(ref, timeout)
        return self.start(container.id)

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> Container:
        """Remove a container; a running one only with `force` (it is killed first).
        `volumes` also removes its anonymous volumes (docker `rm -v`)."""
        container = self.store.find(ref)
        with self.store.lock(container.id):
            container = self._reload(container)
            if (container.running or container.status == RESTARTING) and not force:
                raise Conflict(f"you cannot remove {container.status} container "
                               f"{container.name}: stop it first or use `rm -f`")
            if container.running:
                self._leave_port_group(container)
                self._kill_and_wait(container, self.runtime_for(container))
                container = self._reload(container)
            self._teardown(container)
            self.network.removed(container)
            self.store.remove(container)
        if volumes:
            self._remove_anonymous_volumes(container)
        return container

    def _remove_anonymous_volumes(self, container: Container) -> None:
        for mount in container.mounts:
            if mount.get("Type") == "volume" and mount.get("Anonymous"):
                try:
                    self.host.volumes.remove(mount["Name"], users=self.users_of_volume)
                except BerthError:
                    pass

    def wait(self, ref: str, timeout: float | None = None) -> int:
        """Block until the container is not running; its exit code (docker `wait`)."""
        container = self.store.find(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while container.running and not self.has_exited(container):
            if deadline is not None and time.monotonic() >= deadline:
                raise RuntimeFailure(f"container {container.name} still running after {timeout}s")
            time.sleep(0.02)
            container = self.store.load(container.id) or container
        return int(self.refresh(container).state["ExitCode"])

    # -- exec --------------------------------------------------------------------------------
    def exec(self, ref: str, command: builtins.list[str], env: builtins.list[str] | None = None,
             workdir: str | None = None, user: str | None = None, capture: bool = False,
             timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run `command` inside a running container (non-interactive, like `docker exec`
        without -i/-t); the process's exit code comes back as `returncode`."""
        if not command:
            raise InvalidArgument("exec needs a command to run")
        container = self.get(ref)
        if not container.running:
            raise ContainerNotRunning(f"container {container.name} is not running")
        log_file = container.userdata / f"exec-{os.getpid()}-{secrets.token_hex(4)}.log"
        argv = self.runtime_for(container).exec_argv(
            container.id, command, env=[e for e in (opts.parse_env_entry(x) for x in env or [])
                                        if e], cwd=workdir, user=self._exec_user(user, container),
            log_file=log_file)
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=capture,
                                    timeout=timeout)
            if result.returncode != 0:
                result.returncode = exec_failure_code(log_file) or result.returncode
        finally:
            log_file.unlink(missing_ok=True)
        return result

    def _exec_user(self, user: str | None, container: Container) -> str | None:
        """runc exec wants numeric uid[:gid]; names are resolved against the image."""
        if not user:
            return None
        if all(part.isdigit() for part in user.split(":")):
            return user
        layers = self.host.images.get(container.image_id).layer_dirs()
        resolved = resolve_user(user, layers)
        return f"{resolved.uid}:{resolved.gid}"

    def stats(self, ref: str, interval: float | None = None) -> Stats:
        """CPU %, memory, pids, block and network I/O of a running container (two samples
        `interval` seconds apart for the CPU %)."""
        from runtime.containers import stats

        container = self.get(ref)
        if not container.running:
            raise ContainerNotRunning(f"container {container.name} is not running")
        return stats.sample(container, self.runtime_for(container),
                            stats.SAMPLE_INTERVAL if interval is None else interval)

    def run_healthcheck(self, ref: str, early: bool = False) -> dict[str, Any]:
        """Run the container's health check once and record the result (health.py)."""
        return run_healthcheck(self, ref, early)

    # -- purge -------------------------------------------------------------------------------
    def purge(self) -> None:
        """Force-remove every container of this root: kill, unmount, delete runtime state and
        cgroups, remove records. Works on half-created containers too."""
        errors = []
        for container_id in self.store.ids():
            container = self.store.load(container_id)
            if container is None:
                container = Container(
                    id=container_id, name=container_id, created=ZERO_TIME, image_id="",
                    image_ref="", config={}, host_config={}, mounts=[], state=new_state(),
                    runtime=_fallback_runtime(self.root),
                    directory=self.store.directory(container_id),
                )
            runtime = self.runtime_for(container)
            try:
                if runtime.state(container.id) is not None:
                    try:
                        runtime.kill(container.id, 9, all_processes=True)
                    except ContainerNotRunning:
                        pass
                    self._wait_exit(container, KILL_GRACE)
                self._teardown(container)
                self.network.removed(container)
            except BerthError as exc:
                errors.append(f"{container.name}: {exc}")
            rootfs.unmount(container.rootfs)
            self.store.remove(container)
        self._purge_runtime_leftovers()
        remove_empty_cgroup_parents()
        socket_dir = monitor.short_socket_dir(self.root)
        if socket_dir.is_dir() and not socket_dir.is_relative_to(self.root):
            import shutil

            shutil.rmtree(socket_dir, ignore_errors=True)
        if errors:
            raise RuntimeFailure("purge could not clean up: " + "; ".join(errors))

    def _purge_runtime_leftovers(self) -> None:
        """Containers the runtime knows but no record names (a crash during create)."""
        state_roots = self.root / "oci"
        if not state_roots.is_dir():
            return
        for state_root in state_roots.iterdir():
            runtime = OCIRuntime(_runtime_binary(state_root.name), state_root)
            for entry in state_root.iterdir():
                if entry.is_dir():
                    try:
                        runtime.kill(entry.name, 9, all_processes=True)
                    except BerthError:
                        pass
                    try:
                        runtime.delete(entry.name)
                    except BerthError:
                        pass


# -- helpers -------------------------------------------------------------------------------
class _TakenNames:
    """`name in taken` through the store's name index (for `generate_name`)."""

    def __init__(self, store: ContainerStore):
        self.store = store

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.store.name_owner(name) is not None


def _labels_match(labels: dict[str, str], wanted: dict[str, str | None]) -> bool:
    return all(k in labels and (v is None or labels[k] == v) for k, v in wanted.items())


def _healthcheck(health: opts.HealthOptions | None, image_health: dict | None) -> dict | None:
    """The image's Healthcheck with the --health-* flags laid over it."""
    merged = dict(image_health or {})
    if health is not None:
        if health.test:
            merged["Test"] = health.test
        for key, value in (("Interval", health.interval), ("Timeout", health.timeout),
                           ("StartPeriod", health.start_period),
                           ("StartInterval", health.start_interval), ("Retries", health.retries)):
            if value:
                merged[key] = value
    if health is not None and health.retries < 0:
        raise InvalidArgument("--health-retries must be 0 or more")
    check_test(merged.get("Test") or [])
    return merged or None


def _default_env(env: list[str], hostname: str, home: str) -> list[str]:
    names = {entry.partition("=")[0] for entry in env}
    result = list(env)
    if "PATH" not in names:
        result.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in names:
        result.append(f"HOSTNAME={hostname}")
    if "HOME" not in names:
        result.append(f"HOME={home}")
    return result


def _no_wiring(container: Container) -> None:
    """A container in another's network namespace: nothing to wire."""


def _tini() -> str | None:
    from runtime.containers.spec import tini_path

    return tini_path()


def _set_exec_exit_code(exc: RuntimeFailure) -> None:
    """docker run's exit codes for a command that cannot run: 127 not found, 126 not
    executable."""
    text = str(exc)
    if "executable file not found" in text or "no such file or directory" in text:
        exc.exit_code = 127
    elif "permission denied" in text:
        exc.exit_code = 126


def _fallback_runtime(root: Path) -> str:
    state_roots = root / "oci"
    if state_roots.is_dir():
        for entry in state_roots.iterdir():
            return _runtime_binary(entry.name)
    return _runtime_binary("runc")


def _runtime_binary(name: str) -> str:
    import shutil

    return shutil.which(name) or name


def _default_network(host: Host) -> NetworkProvider:
    """Bridge networking (runtime/network) when it can be imported, else loopback only."""
    try:
        return host.networks
    except ImportError:  # pyroute2 missing: `make setup` installs it
        return LoopbackOnly()
