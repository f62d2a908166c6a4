"""The kernel-facing run options: each parser accepts docker's forms and refuses bad values with
a message naming the field and what is allowed; contradictory combinations are refused."""

from __future__ import annotations

import pytest

from runtime.containers import kernel_options as k
from runtime.containers.options import RunOptions
from runtime.errors import InvalidArgument


def refused(match: str):
    return pytest.raises(InvalidArgument, match=match)


# -- capabilities ----------------------------------------------------------------------------
def test_capabilities_accept_docker_spellings_and_all():
    assert k.parse_capabilities(["net_admin", "CAP_SYS_PTRACE", "NET_ADMIN", "all"],
                                "cap_add") == ["NET_ADMIN", "SYS_PTRACE", "ALL"]


@pytest.mark.parametrize("value", [["NET_ADMINS"], ["CAP_"], "NET_ADMIN", [1]])
def test_capabilities_refuse_unknown_names_and_non_lists(value):
    with refused("cap_add"):
        k.parse_capabilities(value, "cap_add (--cap-add)")


def test_capability_sets_follow_dockers_rules():
    defaults = ["CAP_CHOWN", "CAP_KILL"]
    assert k.effective_capabilities({}, defaults) == ["CAP_CHOWN", "CAP_KILL"]
    assert k.effective_capabilities({"CapAdd": ["NET_ADMIN"], "CapDrop": ["CHOWN"]},
                                    defaults) == ["CAP_KILL", "CAP_NET_ADMIN"]
    assert k.effective_capabilities({"CapDrop": ["ALL"], "CapAdd": ["KILL"]},
                                    defaults) == ["CAP_KILL"]
    everything = [f"CAP_{c}" for c in k.host_capabilities()]
    assert k.effective_capabilities({"CapAdd": ["ALL"], "CapDrop": ["KILL"]}, defaults) == [
        c for c in everything if c != "CAP_KILL"]
    assert k.effective_capabilities({"Privileged": True}, defaults) == everything


def test_same_capability_added_and_dropped_is_refused():
    with refused("both cap_add and cap_drop"):
        k.host_options(RunOptions(image="x", cap_add=["NET_ADMIN"], cap_drop=["net_admin"]), 0)


def test_privileged_with_cap_drop_is_refused_and_privileged_must_be_a_bool():
    with refused("cap_drop has no effect"):
        k.host_options(RunOptions(image="x", privileged=True, cap_drop=["CHOWN"]), 0)
    with refused("privileged"):
        k.host_options(RunOptions(image="x", privileged="yes"), 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("no-new-privileges", "no-new-privileges=true"),
    ("no-new-privileges:false", "no-new-privileges=false"),
    ("seccomp=unconfined", "seccomp=unconfined"), ("seccomp:unconfined", "seccomp=unconfined"),
    ("apparmor=docker-default", "apparmor=docker-default"), ("label=disable", "label=disable"),
    ("systempaths=unconfined", "systempaths=unconfined"),
    ("seccomp=/etc/profile.json", "seccomp=/etc/profile.json"),
])
def test_security_opt_accepts_dockers_options(text, expected):
    assert k.parse_security_opt([text]) == [expected]


@pytest.mark.parametrize("text", ["no-new-privileges:maybe", "seccomp=relative.json", "selinux=x",
                                  "systempaths=confined", "apparmor=", "bogus"])
def test_security_opt_refuses_unknown_or_malformed_options(text):
    with refused("security_opt"):
        k.parse_security_opt([text])


def test_a_seccomp_profile_file_must_be_a_profile(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"names": []}')
    with refused("needs a defaultAction"):
        k.load_seccomp_profile(str(path))
    path.write_text("{not json")
    with refused("is not JSON"):
        k.load_seccomp_profile(str(path))
    with refused("cannot read seccomp profile"):
        k.load_seccomp_profile(str(tmp_path / "missing.json"))


# -- devices ---------------------------------------------------------------------------------
def test_devices_take_dockers_three_forms():
    assert k.parse_devices(["/dev/null", "/dev/null:/dev/mynull", "/dev/zero:r",
                            "/dev/full:/dev/f:rw"]) == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/full", "PathInContainer": "/dev/f", "CgroupPermissions": "rw"},
    ]


@pytest.mark.parametrize("text,reason", [
    ("/dev/nope", "No such file"), ("/etc/passwd", "not a device"),
    ("dev/null", "must be absolute"), ("/dev/null:rel", "must be absolute"),
    ("/dev/null:/dev/x:rwx", "combination of r, w and m"), ("/dev/null:/a:/b:/c", "use"),
    ("/dev/null:/dev/../etc/x", "without '..'"),
])
def test_devices_refuse_bad_entries(text, reason):
    with refused(reason):
        k.parse_devices([text])


# -- sysctls and ulimits ---------------------------------------------------------------------
def test_sysctls_accept_namespaced_keys_in_both_shapes():
    assert k.parse_sysctls({"net.core.somaxconn": 1024, "kernel.shmmax": "68719476736"}) == {
        "net.core.somaxconn": "1024", "kernel.shmmax": "68719476736"}
    assert k.parse_sysctls(["net/ipv4/ip_forward=1", "fs.mqueue.msg_max=20"]) == {
        "net.ipv4.ip_forward": "1", "fs.mqueue.msg_max": "20"}


@pytest.mark.parametrize("value,reason", [
    ({"kernel.hostname": "x"}, "not namespaced"), ({"vm.swappiness": "1"}, "not namespaced"),
    (["net.core.somaxconn"], "KEY=VALUE"), ({"net.core.somaxconn": ""}, "non-empty line"),
    ({"net.core.somaxconn": True}, "string or a number"), ({"bad key": "1"}, "dotted name"),
    ("net.core.somaxconn=1", "object"),
])
def test_sysctls_refuse_host_wide_or_malformed_entries(value, reason):
    with refused(reason):
        k.parse_sysctls(value)


def test_network_sysctls_are_refused_when_the_network_is_shared():
    with refused("not allowed with network_mode host"):
        k.host_options(RunOptions(image="x", network_mode="host",
                                  sysctls={"net.core.somaxconn": "1"}), 0)
    with refused("not allowed with ipc host"):
        k.host_options(RunOptions(image="x", ipc="host", sysctls={"kernel.shmmax": "1"}), 0)


def test_ulimits_accept_dicts_numbers_and_flags():
    expected = [{"Name": "nofile", "Soft": 1024, "Hard": 2048},
                {"Name": "core", "Soft": -1, "Hard": -1}]  # -1: unlimited
    assert k.parse_ulimits({"nofile": {"soft": 1024, "hard": 2048}, "core": -1}) == expected
    assert k.parse_ulimits(["nofile=1024:2048", "core=-1"]) == expected
    assert k.parse_ulimits(["nproc=64"]) == [{"Name": "nproc", "Soft": 64, "Hard": 64}]


@pytest.mark.parametrize("value,reason", [
    ({"files": 10}, "allowed as, core"), ({"nofile": {"soft": 10}}, "soft"),
    ({"nofile": {"soft": 20, "hard": 10}}, "above the hard limit"),
    ({"nofile": "many"}, "use a number"), ({"nofile": -5}, ">= 0"), (["nofile"], "NAME=SOFT"),
    (["nofile=1", "NOFILE=2"], "given twice"), ({"nofile": True}, "use a number"),
    ({"nofile": -1}, "fs.nr_open"), ({"nofile": 2**40}, "fs.nr_open"),
])
def test_ulimits_refuse_bad_values(value, reason):
    with refused(reason):
        k.parse_ulimits(value)


# -- tmpfs and shm ---------------------------------------------------------------------------
def test_tmpfs_options_are_normalised_and_docker_defaults_added():
    parsed = k.parse_tmpfs(["/run", "/cache:size=64m,mode=1777,uid=1000,exec"])
    assert parsed == {"/run": "", "/cache": f"size={64 * 1024**2},mode=1777,uid=1000,exec"}
    assert k.tmpfs_mount_options(parsed["/run"]) == ["noexec", "nosuid", "nodev"]
    assert k.tmpfs_mount_options(parsed["/cache"]) == [
        "nosuid", "nodev", f"size={64 * 1024**2}", "mode=1777", "uid=1000", "exec"]


@pytest.mark.parametrize("text,reason", [
    ("run", "absolute"), ("/", "not /"), ("/x:size=lots", "size"), ("/x:mode=999", "octal"),
    ("/x:uid=root", "use a number"), ("/x:bogus", "allowed ro, rw"), ("/a/../b", "without"),
])
def test_tmpfs_refuses_bad_entries(text, reason):
    with refused(reason):
        k.parse_tmpfs([text])


def test_shm_size_defaults_to_64_mib_and_refuses_bad_sizes():
    assert k.parse_shm_size(0) == 64 * 1024**2
    assert k.parse_shm_size("256m") == 256 * 1024**2
    for bad in ("big", -1, "1x"):
        with refused("shm_size"):
            k.parse_shm_size(bad)
    with refused("cannot be combined with ipc host"):
        k.host_options(RunOptions(image="x", ipc="host", shm_size="1g"), 0)


# -- name resolution -------------------------------------------------------------------------
def test_extra_hosts_accept_colon_equals_ipv6_and_host_gateway():
    assert k.parse_extra_hosts(["db:10.0.0.2", "api=10.0.0.3", "v6:::1", "b:[fe80::1]",
                                "gw:host-gateway"]) == [
        "db:10.0.0.2", "api:10.0.0.3", "v6:::1", "b:fe80::1", "gw:host-gateway"]


@pytest.mark.parametrize("text,reason", [
    ("db", "NAME:IP"), ("db:10.0.0.300", "not an IP"), ("bad name:1.2.3.4", "not a host name"),
    (":1.2.3.4", "NAME:IP"),
])
def test_extra_hosts_refuse_bad_entries(text, reason):
    with refused(reason):
        k.parse_extra_hosts([text])


def test_dns_fields_are_checked():
    assert k.parse_dns(["1.1.1.1", "2606:4700::1111"]) == ["1.1.1.1", "2606:4700::1111"]
    with refused("dns"):
        k.parse_dns(["dns.google"])
    assert k.parse_dns_search(["example.com.", "."]) == ["example.com", "."]
    with refused("dns_search"):
        k.parse_dns_search(["bad domain"])
    assert k.parse_dns_options(["ndots:2", "rotate", "edns0"]) == ["ndots:2", "rotate", "edns0"]
    for bad in ("ndots", "rotate:1", "nope", "timeout:x"):
        with refused("dns_opt"):
            k.parse_dns_options([bad])


def test_resolv_conf_replaces_only_what_is_given():
    base = "nameserver 10.89.0.1\nsearch lan\noptions ndots:1\n"
    assert k.resolv_conf(base, [], [], []) == base
    assert k.resolv_conf(base, ["9.9.9.9"], ["example.com"], ["ndots:3"]) == (
        "nameserver 9.9.9.9\nsearch example.com\noptions ndots:3\n")
    assert k.resolv_conf(base, [], ["."], []) == "nameserver 10.89.0.1\noptions ndots:1\n"


# -- namespaces ------------------------------------------------------------------------------
def test_namespace_modes():
    assert k.parse_pid_mode("host") == "host" and k.parse_pid_mode(None) == ""
    with refused("pid"):
        k.parse_pid_mode("container:x")
    assert k.parse_ipc_mode("container:db") == "container:db"
    assert k.parse_ipc_mode("shareable") == "shareable"
    for bad in ("shared", "container:", "container:bad name"):
        with refused("ipc"):
            k.parse_ipc_mode(bad)
    assert k.parse_network_mode("container:vpn") == "container:vpn"
    assert k.parse_network_mode("bridge") == ""
    for bad in ("overlay", "container:", "service:x"):
        with refused("network_mode"):
            k.parse_network_mode(bad)


@pytest.mark.parametrize("extra,named", [
    ({"publish": ["80"]}, "ports"), ({"networks": ["berth"]}, "networks"),
    ({"dns": ["1.1.1.1"]}, "dns"), ({"extra_hosts": ["a:1.2.3.4"]}, "extra_hosts"),
    ({"hostname": "h"}, "hostname"), ({"expose": ["80"]}, "expose"),
    ({"network_aliases": ["a"]}, "network_aliases"),
])
def test_joining_another_containers_network_refuses_network_settings(extra, named):
    with refused(f"shares the network of vpn, so {named}"):
        k.host_options(RunOptions(image="x", network_mode="container:vpn", **extra), 0)


def test_host_or_none_network_mode_cannot_be_combined_with_other_networks():
    with refused("cannot be combined with networks"):
        k.host_options(RunOptions(image="x", network_mode="host", networks=["berth"]), 0)
    k.host_options(RunOptions(image="x", network_mode="none", networks=["none"]), 0)
    with refused("host-gateway needs a network"):
        k.host_options(RunOptions(image="x", network_mode="none",
                                  extra_hosts=["gw:host-gateway"]), 0)


# -- ports, logging, platform, groups, reservations ------------------------------------------
def test_expose_records_ports_and_ranges():
    assert k.parse_expose(["80", "53/udp", "8000-8002/TCP"]) == {
        "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}}
    for bad in ("http", "0", "70000", "90-80", "80/icmp"):
        with refused("expose"):
            k.parse_expose([bad])


def test_logging_accepts_dockers_drivers_and_size_options():
    assert k.parse_logging({}) == {"Type": "json-file", "Config": {}}
    assert k.parse_logging({"driver": "json-file", "options": {"max-size": "10m",
                                                               "max-file": 3}}) == {
        "Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert k.parse_logging({"driver": "none"}) == {"Type": "none", "Config": {}}
    assert k.log_size_max({"Type": "json-file", "Config": {"max-size": "10m"}}) == 10 * 1024**2
    assert k.log_size_max({"Type": "local", "Config": {}}) == 20 * 1024**2
    assert k.log_size_max({"Type": "json-file", "Config": {}}) is None


@pytest.mark.parametrize("value,reason", [
    ({"driver": "syslog"}, "allowed json-file, local, none"),
    ({"driver": "json-file", "options": {"compress": "true"}}, "allowed max-size, max-file"),
    ({"options": {"max-size": "10"}}, "at least 1k"),
    ({"options": {"max-size": "1m", "max-file": "0"}}, "count of 1 or more"),
    ({"options": {"max-file": "3"}}, "max-file needs max-size"),
    ({"driver": "none", "options": {"max-size": "1m"}}, "takes no options"),
    ({"type": "json-file"}, "use"), ("json-file", "use"),
])
def test_logging_refuses_unsupported_drivers_and_options(value, reason):
    with refused(reason):
        k.parse_logging(value)


def test_log_opt_flags_need_key_value():
    assert k.parse_log_opts(["max-size=1m"]) == {"max-size": "1m"}
    with refused("--log-opt"):
        k.parse_log_opts(["max-size"])


def test_platform_must_be_this_hosts():
    host = k.host_platform()
    assert k.parse_platform(host) == host and k.parse_platform("") == ""
    assert k.parse_platform("linux") == "linux"
    other = "linux/s390x" if "s390x" not in host else "linux/amd64"
    with refused(f"cannot run on this host, which is {host}"):
        k.parse_platform(other)
    with refused("cannot run on this host"):
        k.parse_platform("windows/amd64")
    with refused("OS/ARCH"):
        k.parse_platform("linux//")


def test_platform_aliases_are_normalised(monkeypatch):
    monkeypatch.setattr(k.platform_module, "machine", lambda: "x86_64")
    assert k.parse_platform("linux/x86_64") == "linux/amd64"
    monkeypatch.setattr(k.platform_module, "machine", lambda: "aarch64")
    assert k.parse_platform("linux/aarch64/v8") == "linux/arm64/v8"
    with refused("cannot run on this host, which is linux/arm64/v8"):
        k.parse_platform("linux/amd64")


def test_group_add_takes_names_and_gids():
    assert k.parse_group_add(["audio", "1234"]) == ["audio", "1234"]
    for bad in ("", "a b", "99999999999"):
        with refused("group_add"):
            k.parse_group_add([bad])


def test_memory_reservation_is_a_soft_limit_below_the_limit():
    parsed = k.host_options(RunOptions(image="x", memory_reservation="64m"), 128 * 1024**2)
    assert parsed["MemoryReservation"] == 64 * 1024**2
    with refused("memory_reservation must not be above the memory limit"):
        k.host_options(RunOptions(image="x", memory_reservation="256m"), 128 * 1024**2)
    with refused("memory_reservation"):
        k.host_options(RunOptions(image="x", memory_reservation="lots"), 0)


def test_cpus_reservation_is_carried_as_nano_cpus():
    assert k.parse_cpus_reservation("0.5") == 500_000_000
    for bad in ("half", -1):
        with refused("cpus_reservation"):
            k.parse_cpus_reservation(bad)


def test_unset_fields_give_dockers_defaults():
    parsed = k.host_options(RunOptions(image="x"), 0)
    assert parsed == {
        "CapAdd": None, "CapDrop": None, "Privileged": False, "SecurityOpt": None,
        "Devices": [], "Sysctls": {}, "Ulimits": [], "Tmpfs": {}, "ShmSize": 64 * 1024**2,
        "ExtraHosts": None, "Dns": [], "DnsSearch": [], "DnsOptions": [], "PidMode": "",
        "IpcMode": "private", "NetworkMode": "", "LogConfig": {"Type": "json-file",
                                                               "Config": {}},
        "Platform": "", "MemoryReservation": 0, "NanoCpusReservation": 0, "GroupAdd": None,
        "ExposedPorts": {},
    }


def test_interface_sysctls_are_told_apart_from_namespace_wide_ones():
    assert k.interface_sysctls({"net.ipv4.conf.eth0.rp_filter": "2",
                                "net.ipv6.neigh.eth1.proxy_delay": "1",
                                "net.ipv4.conf.all.src_valid_mark": "1",
                                "net.ipv4.conf.default.rp_filter": "1",
                                "net.core.somaxconn": "1"}) == [
        "net.ipv4.conf.eth0.rp_filter", "net.ipv6.neigh.eth1.proxy_delay"]
