"""The OCI config Berth writes: Docker's secure defaults, limits and --init."""

from __future__ import annotations

import resource

from runtime.containers import spec
from runtime.containers.users import ResolvedUser, resolve_user


def _spec(config=None, host_config=None, user=None):
    config = {"Cmd": ["sh"], "Env": ["PATH=/bin"], **(config or {})}
    return spec.build_spec("a" * 64, config, host_config or {}, user or ResolvedUser(0, 0), [],
                           None, "/berth/berth-" + "a" * 64)


def test_spec_has_only_dockers_default_capabilities_and_no_new_privileges():
    process = _spec()["process"]
    assert sorted(process["capabilities"]["bounding"]) == sorted(spec.DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in process["capabilities"]["effective"]
    assert process["capabilities"]["inheritable"] == [] == process["capabilities"]["ambient"]
    assert process["noNewPrivileges"] is True


def test_non_root_user_gets_no_effective_capabilities():
    caps = _spec(user=ResolvedUser(1000, 1000))["process"]["capabilities"]
    assert caps["effective"] == [] and caps["permitted"] == []


def test_spec_masks_and_protects_proc_and_sys():
    linux = _spec()["linux"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]
    sysfs = next(m for m in _spec()["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]


def test_nofile_limit_stays_within_the_hosts_hard_limit():
    rlimit = _spec()["process"]["rlimits"][0]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert rlimit["type"] == "RLIMIT_NOFILE"
    assert rlimit["soft"] <= rlimit["hard"] <= (hard if hard >= 0 else rlimit["hard"])


def test_limits_map_to_cgroup_resources_with_a_default_pids_limit():
    default = _spec()["linux"]["resources"]
    assert default["pids"]["limit"] == spec.DEFAULT_PIDS_LIMIT
    assert default["devices"][0] == {"allow": False, "access": "rwm"}
    limited = _spec(host_config={"Memory": 64 * 1024**2, "NanoCpus": 500_000_000,
                                 "PidsLimit": 50})["linux"]["resources"]
    assert limited["memory"]["limit"] == 64 * 1024**2
    assert limited["cpu"] == {"quota": 50_000, "period": 100_000}
    assert limited["pids"]["limit"] == 50


def test_init_puts_tini_in_front_of_the_command():
    result = _spec(config={"Entrypoint": ["app"], "Cmd": ["--serve"]},
                   host_config={"Init": True})
    assert result["process"]["args"] == [spec.INIT_PATH, "-s", "--", "app", "--serve"]
    assert any(m["destination"] == spec.INIT_PATH for m in result["mounts"])


def test_loopback_only_network_is_a_new_namespace_and_a_given_path_is_joined():
    assert {"type": "network"} in _spec()["linux"]["namespaces"]
    joined = spec.build_spec("b" * 64, {"Cmd": ["sh"]}, {}, ResolvedUser(0, 0), [],
                             "/run/netns/x", "/berth/x")
    assert {"type": "network", "path": "/run/netns/x"} in joined["linux"]["namespaces"]


def test_users_resolve_from_the_images_own_passwd_and_group(tmp_path):
    lower, upper = tmp_path / "l1", tmp_path / "l2"
    (lower / "etc").mkdir(parents=True)
    (upper / "etc").mkdir(parents=True)
    (lower / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\napp:x:100:101::/home/app:/bin/sh\n")
    (lower / "etc/group").write_text("root:x:0:\napp:x:101:\nextra:x:300:app\n")
    # a symlinked passwd in a higher layer must not be followed to the host's file
    (upper / "etc/shadow").symlink_to("/etc/shadow")
    resolved = resolve_user("app", [lower, upper])
    assert (resolved.uid, resolved.gid, resolved.additional_gids, resolved.home) == (
        100, 101, [300], "/home/app")
    assert resolve_user("1234", [lower]).gid == 0
    assert resolve_user("app:extra", [lower]).gid == 300
    (upper / "etc/passwd").symlink_to("/etc/passwd")
    assert resolve_user("0", [lower, upper]).uid == 0


def test_unknown_user_is_refused_with_its_name(tmp_path):
    import pytest

    from runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="'ghost'"):
        resolve_user("ghost", [tmp_path])


def test_network_sysctls_only_in_the_containers_own_namespace():
    assert _spec(host_config={"NetworkMode": "berth"})["linux"]["sysctl"] == {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
    }
    assert "sysctl" not in _spec(host_config={"NetworkMode": "host"})["linux"]


def test_seccomp_comes_from_the_system_profile_unless_unconfined(monkeypatch):
    assert _spec()["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    monkeypatch.setenv("BERTH_SECCOMP_PROFILE", "unconfined")
    assert "seccomp" not in _spec()["linux"]


# -- the kernel-facing fields ----------------------------------------------------------------
def test_cap_add_and_cap_drop_change_bounding_set_and_the_seccomp_rules_follow():
    caps = _spec(host_config={"CapAdd": ["SYS_ADMIN"], "CapDrop": ["CHOWN"]})["process"][
        "capabilities"]
    assert "CAP_SYS_ADMIN" in caps["bounding"] and "CAP_SYS_ADMIN" in caps["effective"]
    assert "CAP_CHOWN" not in caps["bounding"]


def test_privileged_gets_every_capability_no_filter_and_no_masked_paths():
    from runtime.containers.kernel_options import host_capabilities

    result = _spec(host_config={"Privileged": True})
    assert result["process"]["capabilities"]["bounding"] == [
        f"CAP_{c}" for c in host_capabilities()]
    linux = result["linux"]
    assert "seccomp" not in linux and linux["maskedPaths"] == [] == linux["readonlyPaths"]
    assert {"allow": True, "access": "rwm"} in linux["resources"]["devices"]
    # the host's devices, except those the runtime makes in every container itself
    assert not {d["path"] for d in linux.get("devices", [])} & set(spec.RUNTIME_DEVICES)
    sysfs = next(m for m in result["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_security_opt_turns_off_what_it_names():
    result = _spec(host_config={"SecurityOpt": ["no-new-privileges=false", "seccomp=unconfined",
                                                "systempaths=unconfined"]})
    assert result["process"]["noNewPrivileges"] is False
    assert "seccomp" not in result["linux"] and result["linux"]["maskedPaths"] == []


def test_devices_become_nodes_and_cgroup_rules():
    result = _spec(host_config={"Devices": [{"PathOnHost": "/dev/null",
                                             "PathInContainer": "/dev/mynull",
                                             "CgroupPermissions": "rw"}]})
    assert result["linux"]["devices"] == [{"path": "/dev/mynull", "type": "c", "major": 1,
                                           "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert result["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


def test_ulimits_sysctls_tmpfs_and_shm_size_reach_the_spec():
    result = _spec(host_config={
        "Ulimits": [{"Name": "nofile", "Soft": 2048, "Hard": 4096},
                    {"Name": "core", "Soft": -1, "Hard": -1}],
        "Sysctls": {"net.core.somaxconn": "1000"}, "Tmpfs": {"/cache": "size=1024"},
        "ShmSize": 128 * 1024**2, "MemoryReservation": 32 * 1024**2})
    assert result["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 4096},
        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]
    assert result["linux"]["sysctl"] == {**spec.NETWORK_SYSCTLS, "net.core.somaxconn": "1000"}
    tmpfs = next(m for m in result["mounts"] if m["destination"] == "/cache")
    assert tmpfs == {"destination": "/cache", "type": "tmpfs", "source": "tmpfs",
                     "options": ["noexec", "nosuid", "nodev", "size=1024"]}
    shm = next(m for m in result["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={128 * 1024**2}" in shm["options"]
    assert result["linux"]["resources"]["memory"] == {"reservation": 32 * 1024**2}


def test_host_pid_and_ipc_leave_out_those_namespaces_and_share_the_hosts_shm():
    result = spec.build_spec("c" * 64, {"Cmd": ["sh"]}, {"PidMode": "host", "IpcMode": "host"},
                             ResolvedUser(0, 0), [], None, "/berth/c", None, "/dev/shm")
    types = [n["type"] for n in result["linux"]["namespaces"]]
    assert "pid" not in types and "ipc" not in types and "network" in types
    shm = next(m for m in result["mounts"] if m["destination"] == "/dev/shm")
    assert shm["type"] == "bind" and shm["source"] == "/dev/shm"


def test_another_containers_ipc_namespace_is_joined_by_path():
    result = spec.build_spec("c" * 64, {"Cmd": ["sh"]}, {"IpcMode": "container:db"},
                             ResolvedUser(0, 0), [], "/proc/9/ns/net", "/berth/c",
                             "/proc/9/ns/ipc", "/var/lib/berth/db/shm")
    assert {"type": "ipc", "path": "/proc/9/ns/ipc"} in result["linux"]["namespaces"]
    assert "sysctl" in result["linux"]  # its own network sysctls only without NetworkMode host


def test_joined_network_gets_no_network_sysctls():
    result = _spec(host_config={"NetworkMode": "container:vpn"})
    assert "sysctl" not in result["linux"]
