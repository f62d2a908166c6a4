"""The kernel-facing container fields, end to end with real runc, conmon and overlayfs: what a
process inside the container can do and see once cap_add, sysctls, devices… are set, and that
nothing changes when they are not."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from runtime.containers import kernel_options, spec
from runtime.containers.logs import read_entries
from runtime.containers.options import RunOptions
from runtime.errors import ContainerNotRunning, InvalidArgument, NotFound

pytestmark = pytest.mark.root


def finished(host, script: str, **options) -> tuple[int, str]:
    """Run `sh -c script` to its end; its exit code and output (the container is removed)."""
    container = host.containers.run(RunOptions(image="busybox", command=["sh", "-c", script],
                                               **options))
    try:
        code = host.containers.wait(container.id, timeout=60)
        entries, _ = read_entries(container.log_path)
        return code, "".join(e.text + "\n" for e in entries)
    finally:
        host.containers.remove(container.id, force=True)


def started(host, **options):
    return host.containers.run(RunOptions(image="busybox", command=["sleep", "120"], **options))


def exec_out(host, container, script: str) -> str:
    result = host.containers.exec(container.id, ["sh", "-c", script], capture=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


# -- capabilities and security options --------------------------------------------------------
def test_cap_add_net_admin_can_add_an_address_and_the_default_cannot(host):
    script = "ip addr add 10.250.0.1/24 dev lo && ip -o addr show lo"
    code, out = finished(host, script, cap_add=["NET_ADMIN"])
    assert code == 0 and "10.250.0.1/24" in out
    code, out = finished(host, script)
    assert code != 0 and "Operation not permitted" in out


def test_cap_drop_chown_makes_chown_fail(host):
    assert finished(host, "chown 1:1 /tmp")[0] == 0
    code, out = finished(host, "chown 1:1 /tmp", cap_drop=["CHOWN"])
    assert code != 0 and "Operation not permitted" in out


def test_privileged_has_every_capability_host_devices_and_no_filter(host):
    host_only = next((path for path in sorted(os.listdir("/dev"))
                      if stat.S_ISCHR(os.stat(f"/dev/{path}").st_mode)
                      and f"/dev/{path}" not in spec.RUNTIME_DEVICES
                      and not os.path.islink(f"/dev/{path}")), None)
    assert host_only is not None
    code, out = finished(host, f"test -c /dev/{host_only} && echo device; "
                               "grep -E '^(Seccomp|CapBnd):' /proc/self/status; "
                               "grep -c . /proc/kcore >/dev/null 2>&1; mount | grep ' /sys '",
                         privileged=True)
    assert code == 0, out
    assert "device" in out and "Seccomp:\t0" in out
    bounding = next(line for line in out.splitlines() if line.startswith("CapBnd:"))
    mask = sum(1 << kernel_options.CAPABILITIES.index(c)
               for c in kernel_options.host_capabilities())
    assert int(bounding.split()[1], 16) == mask
    assert "(rw," in next(line for line in out.splitlines() if " /sys " in line)
    # without it: no such device, the filter on
    code, out = finished(host, f"test -e /dev/{host_only} || echo absent; "
                               "grep Seccomp: /proc/self/status")
    assert "absent" in out and "Seccomp:\t2" in out


def test_security_opt_turns_off_no_new_privileges_and_seccomp(host):
    code, out = finished(host, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
                         security_opt=["no-new-privileges:false", "seccomp=unconfined"])
    assert out.split() == ["NoNewPrivs:", "0", "Seccomp:", "0"]
    code, out = finished(host, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]


def test_a_device_can_be_mapped_to_another_path_with_its_permissions(host):
    code, out = finished(host, "echo gone > /dev/mynull && stat -c '%t:%T' /dev/mynull",
                         devices=["/dev/null:/dev/mynull"])
    assert code == 0 and out == "1:3\n"



def test_device_permissions_are_enforced_by_the_device_cgroup(host, tmp_path):
    # a device the runtime does not allow by itself (it always allows /dev/null, zero…); a
    # host without one gets a node of its own (10:229, /dev/fuse's numbers)
    device = next((p for p in ("/dev/fuse", "/dev/cpu_dma_latency", "/dev/kmsg")
                   if os.path.exists(p)), None)
    if device is None:
        device = str(tmp_path / "fuse")
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(10, 229))
    code, out = finished(host, ": < /dev/ro && echo readable; : > /dev/ro",
                         devices=[f"{device}:/dev/ro:r"])
    assert code != 0 and out.splitlines()[0] == "readable" and "not permitted" in out
    code, out = finished(host, ": < /dev/ro && echo readable")
    assert code != 0 and "readable" not in out


# -- sysctls, ulimits, tmpfs, shm --------------------------------------------------------------
def test_sysctls_ulimits_tmpfs_and_shm_size_are_what_the_process_sees(host):
    code, out = finished(
        host, "cat /proc/sys/net/core/somaxconn; ulimit -n; ulimit -Hn; "
              "df -k /cache /dev/shm | tail -n 2 | awk '{print $1, $2}'; mount | grep ' /cache '",
        sysctls={"net.core.somaxconn": "1000"}, ulimits={"nofile": {"soft": 2000, "hard": 3000}},
        tmpfs=["/cache:size=10m,mode=1777"], shm_size="32m")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["1000", "2000", "3000"]
    assert lines[3:5] == ["tmpfs 10240", "shm 32768"]
    assert "noexec" in lines[5] and "nosuid" in lines[5]


def test_a_sysctl_of_the_containers_own_interface_is_set_once_it_exists(host):
    code, out = finished(host, "cat /proc/sys/net/ipv4/conf/eth0/rp_filter",
                         sysctls={"net.ipv4.conf.eth0.rp_filter": "2"})
    assert code == 0 and out == "2\n"


def test_memory_reservation_is_the_cgroups_soft_limit(host):
    code, out = finished(host, "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null"
                               " || cat /sys/fs/cgroup/memory.low",
                         memory="256m", memory_reservation="64m")
    assert code == 0 and out.strip() == str(64 * 1024**2)


def test_group_add_gives_the_process_extra_groups(host):
    code, out = finished(host, "id -G", user="nobody", group_add=["nogroup", "1234"])
    assert code == 0 and set(out.split()) == {"65534", "1234"}
    with pytest.raises(InvalidArgument, match="unable to find group 'nosuchgroup'"):
        host.containers.create(RunOptions(image="busybox", command=["true"],
                                          group_add=["nosuchgroup"]))
    assert host.containers.list(all=True) == []


# -- name resolution -------------------------------------------------------------------------
def test_extra_hosts_and_dns_settings_reach_the_containers_files(host):
    code, out = finished(host, "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
                         extra_hosts=["db.internal:10.1.2.3", "gw:host-gateway"],
                         dns=["9.9.9.9"], dns_search=["example.com"], dns_opt=["ndots:2"])
    hosts, resolv = out.split("---\n")
    assert "10.1.2.3\tdb.internal" in hosts.splitlines()
    gateway = next(line.split()[0] for line in hosts.splitlines() if line.endswith("\tgw"))
    assert gateway.startswith("10.")  # the berth network's gateway
    assert resolv == "nameserver 9.9.9.9\nsearch example.com\noptions ndots:2\n"


# -- namespaces ------------------------------------------------------------------------------
def test_pid_host_sees_the_hosts_pid_1(host):
    host_init = Path("/proc/1/comm").read_text()
    assert finished(host, "cat /proc/1/comm", pid="host")[1] == host_init
    assert finished(host, "cat /proc/1/comm; true")[1] == "sh\n"


def test_network_mode_none_has_only_loopback(host):
    code, out = finished(host, "ls /sys/class/net", network_mode="none")
    assert code == 0 and out.split() == ["lo"]


def test_network_mode_host_sees_the_hosts_interfaces(host):
    code, out = finished(host, "ls /sys/class/net", network_mode="host")
    assert set(out.split()) == set(os.listdir("/sys/class/net"))


def test_network_mode_container_shares_that_containers_addresses(host):
    owner = started(host, name="owner")
    address = owner.network_settings["Networks"]["berth"]["IPAddress"]
    assert address
    code, out = finished(host, "ip -o -4 addr show; hostname; cat /etc/hosts",
                         network_mode="container:owner")
    assert code == 0 and f"inet {address}/" in out
    assert owner.config["Hostname"] in out.splitlines()  # the owner's host name and files
    joined = host.containers.create(RunOptions(image="busybox", command=["true"],
                                               network_mode="container:owner"))
    assert joined.host_config["NetworkMode"] == "container:owner"
    host.containers.remove(joined.id)
    host.containers.stop(owner.id, timeout=0)
    waiting = host.containers.create(RunOptions(image="busybox", command=["true"],
                                                network_mode="container:owner"))
    with pytest.raises(ContainerNotRunning, match="start owner first"):
        host.containers.start(waiting.id)
    host.containers.remove(waiting.id)
    host.containers.remove(owner.id)


def test_joining_a_missing_container_or_publishing_from_it_is_refused(host):
    with pytest.raises(NotFound, match="there is no container 'ghost'"):
        host.containers.create(RunOptions(image="busybox", command=["true"],
                                          network_mode="container:ghost"))
    with pytest.raises(InvalidArgument, match="ports"):
        host.containers.create(RunOptions(image="busybox", command=["true"],
                                          network_mode="container:ghost", publish=["8080:80"]))
    assert host.containers.list(all=True) == []


def test_ipc_of_a_shareable_container_is_joined_with_its_dev_shm(host):
    owner = started(host, name="shm-owner", ipc="shareable", shm_size="16m")
    exec_out(host, owner, "echo shared > /dev/shm/marker")
    code, out = finished(host, "cat /dev/shm/marker; df -k /dev/shm | tail -n 1 | "
                               "awk '{print $2}'; readlink /proc/self/ns/ipc",
                         ipc="container:shm-owner")
    assert out.splitlines()[:2] == ["shared", "16384"]
    assert out.splitlines()[2] == exec_out(host, owner, "readlink /proc/self/ns/ipc").strip()
    private = started(host, name="private-owner")
    with pytest.raises(InvalidArgument, match="ipc shareable"):
        host.containers.create(RunOptions(image="busybox", command=["true"],
                                          ipc="container:private-owner"))
    host.containers.remove(private.id, force=True)
    host.containers.remove(owner.id, force=True)
    assert not (owner.directory / "shm").is_mount()


def test_ipc_host_shares_the_hosts_dev_shm(host):
    marker = Path("/dev/shm") / f"berth-test-{os.getpid()}"
    marker.write_text("from the host")
    try:
        assert finished(host, f"cat {marker}; echo", ipc="host")[1] == "from the host\n"
    finally:
        marker.unlink()


# -- logging, platform -----------------------------------------------------------------------
def test_logging_none_keeps_no_log(host):
    container = host.containers.run(RunOptions(image="busybox", command=["echo", "secret"],
                                               logging={"driver": "none"}))
    assert host.containers.wait(container.id, timeout=60) == 0
    assert not container.log_path.exists()
    host.containers.remove(container.id)


def test_logging_max_size_keeps_the_log_under_it_with_the_newest_lines(host):
    container = host.containers.run(RunOptions(
        image="busybox", command=["sh", "-c", "for i in $(seq 1 2000); do echo line-$i; done"],
        logging={"driver": "json-file", "options": {"max-size": "8k", "max-file": "2"}}))
    assert host.containers.wait(container.id, timeout=60) == 0
    assert container.log_path.stat().st_size <= 8 * 1024
    entries, _ = read_entries(container.log_path)
    assert entries[-1].text == "line-2000"
    assert len(entries) < 2000
    host.containers.remove(container.id)


def test_a_foreign_platform_is_refused_before_anything_is_created(host):
    other = "linux/s390x" if not kernel_options.host_platform().endswith("s390x") else "linux/amd64"
    with pytest.raises(InvalidArgument, match="Berth does not emulate"):
        host.containers.create(RunOptions(image="busybox", command=["true"], platform=other))
    assert host.containers.list(all=True) == []
    container = host.containers.create(RunOptions(image="busybox", command=["true"],
                                                  platform=kernel_options.host_platform()))
    host.containers.remove(container.id)


# -- the CLI and inspect ---------------------------------------------------------------------
def test_cli_flags_show_in_inspect_as_docker_names_them(cli):
    cli("image", "bootstrap", "busybox")
    cli("create", "--name", "kitchen-sink", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD",
        "--security-opt", "no-new-privileges", "--device", "/dev/null:/dev/mynull:rw",
        "--sysctl", "net.core.somaxconn=512", "--ulimit", "nofile=2048:4096",
        "--tmpfs", "/cache:size=1m", "--shm-size", "128m", "--add-host", "db:10.0.0.5",
        "--dns", "1.1.1.1", "--dns-search", "example.com", "--dns-option", "ndots:3",
        "--pid", "host", "--expose", "8080", "--expose", "53/udp", "--log-driver", "local",
        "--log-opt", "max-size=5m", "--memory", "256m", "--memory-reservation", "128m",
        "--group-add", "1234", "busybox", "true")
    [info] = json.loads(cli("inspect", "kitchen-sink").stdout)
    config = info["HostConfig"]
    assert config["CapAdd"] == ["NET_ADMIN"] and config["CapDrop"] == ["MKNOD"]
    assert config["Privileged"] is False
    assert config["SecurityOpt"] == ["no-new-privileges=true"]
    assert config["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                  "CgroupPermissions": "rw"}]
    assert config["Sysctls"] == {"net.core.somaxconn": "512"}
    assert config["Ulimits"] == [{"Name": "nofile", "Soft": 2048, "Hard": 4096}]
    assert config["Tmpfs"] == {"/cache": f"size={1024**2}"}
    assert config["ShmSize"] == 128 * 1024**2
    assert config["ExtraHosts"] == ["db:10.0.0.5"]
    assert (config["Dns"], config["DnsSearch"], config["DnsOptions"]) == (
        ["1.1.1.1"], ["example.com"], ["ndots:3"])
    assert (config["PidMode"], config["IpcMode"], config["NetworkMode"]) == (
        "host", "private", "berth")
    assert config["LogConfig"] == {"Type": "local", "Config": {"max-size": "5m"}}
    assert config["MemoryReservation"] == 128 * 1024**2 and config["GroupAdd"] == ["1234"]
    assert {"8080/tcp", "53/udp"} <= set(info["Config"]["ExposedPorts"])
    assert "SeccompProfile" not in config
    cli("rm", "kitchen-sink")


def test_cli_network_modes_and_their_refusals(cli):
    cli("image", "bootstrap", "busybox")
    assert cli("run", "--rm", "--network", "none", "busybox", "ls",
               "/sys/class/net").stdout.split() == ["lo"]
    cli("run", "-d", "--name", "net-owner", "busybox", "sleep", "60")
    result = cli("run", "--network", "container:net-owner", "-p", "8080:80", "busybox", "true",
                 check=False)
    assert result.returncode == 125 and "ports (-p) cannot be set here" in result.stderr
    result = cli("run", "--network", "host", "--network", "none", "busybox", "true", check=False)
    assert result.returncode == 125 and "cannot be combined" in result.stderr
    result = cli("run", "--cap-add", "NET_ADMINS", "busybox", "true", check=False)
    assert result.returncode == 125 and "cap_add (--cap-add)" in result.stderr
    cli("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hidden")
    result = cli("logs", "quiet", check=False)
    assert result.returncode == 125 and "logging driver none" in result.stderr
    cli("rm", "quiet")
    result = cli("run", "--log-driver", "syslog", "busybox", "true", check=False)
    assert result.returncode == 125 and "allowed json-file, local, none" in result.stderr
    assert cli("run", "--rm", "--network", "container:net-owner", "busybox", "cat",
               "/etc/hostname").stdout.strip() == json.loads(cli("inspect", "net-owner").stdout)[
        0]["Config"]["Hostname"]
    cli("rm", "-f", "net-owner")
    assert cli("ps", "-a", "-q").stdout == ""


# -- the agent's spec mapping ----------------------------------------------------------------
KERNEL_SPEC = {
    "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"], "security_opt": ["no-new-privileges=true"],
    "devices": ["/dev/null:/dev/mynull:rwm"], "sysctls": {"net.core.somaxconn": "512"},
    "ulimits": {"nofile": {"soft": 2048, "hard": 4096}}, "tmpfs": ["/cache"],
    "shm_size": 128 * 1024**2, "extra_hosts": ["db:10.0.0.5"], "dns": ["1.1.1.1"],
    "dns_search": ["example.com"], "dns_opt": ["ndots:3"], "pid": "host", "ipc": "shareable",
    "logging": {"driver": "local", "options": {"max-size": "5m"}},
    "memory_reservation": 64 * 1024**2, "cpus_reservation": 0.5, "group_add": ["1234"],
}


def test_a_protocol_spec_with_kernel_fields_creates_them_and_reads_back_the_same(host):
    from runtime.agent.specs import run_options, spec_from_container

    container = host.containers.create(run_options({
        "uid": "u-1", "image": "busybox", "command": ["true"], **KERNEL_SPEC}))
    read_back = spec_from_container(host.containers.get(container.id))
    assert {key: read_back.get(key) for key in KERNEL_SPEC} == KERNEL_SPEC
    host.containers.remove(container.id)
    plain = host.containers.create(run_options({"uid": "u-2", "image": "busybox",
                                                "command": ["true"]}))
    assert not set(spec_from_container(plain)) & set(KERNEL_SPEC)  # unset fields stay unset
    host.containers.remove(plain.id)
