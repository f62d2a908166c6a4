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
