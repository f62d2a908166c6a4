"""Resolving a Docker/containers-format seccomp profile into an OCI filter for one container."""

from __future__ import annotations

import pytest

from runtime.containers import seccomp
from runtime.errors import InvalidArgument

PROFILE = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [],
         "includes": {}, "excludes": {}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.1"}},
        {"names": [], "action": "SCMP_ACT_ALLOW"},
    ],
}


def _names(result: dict) -> list[tuple[str, str]]:
    return [(rule["names"][0], rule["action"]) for rule in result["syscalls"]]


def test_rules_are_kept_by_capabilities_architecture_and_kernel():
    result = seccomp.oci_profile(PROFILE, {"CAP_CHOWN"}, "x86_64", (6, 1))
    assert result["defaultAction"] == "SCMP_ACT_ERRNO" and result["defaultErrnoRet"] == 38
    assert result["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert _names(result) == [("read", "SCMP_ACT_ALLOW"), ("personality", "SCMP_ACT_ALLOW"),
                              ("arch_prctl", "SCMP_ACT_ALLOW"), ("bpf", "SCMP_ACT_ERRNO"),
                              ("new_call", "SCMP_ACT_ALLOW")]
    assert result["syscalls"][1]["args"] == [{"index": 0, "value": 8, "valueTwo": 0,
                                              "op": "SCMP_CMP_EQ"}]
    assert result["syscalls"][3]["errnoRet"] == 1


def test_a_capability_turns_a_denial_into_an_allowance():
    result = seccomp.oci_profile(PROFILE, {"CAP_SYS_ADMIN"}, "x86_64", (6, 1))
    assert ("bpf", "SCMP_ACT_ALLOW") in _names(result)
    assert ("bpf", "SCMP_ACT_ERRNO") not in _names(result)


def test_other_architectures_and_older_kernels_drop_their_rules():
    result = seccomp.oci_profile(PROFILE, set(), "aarch64", (5, 10))
    assert result["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    names = [name for name, _ in _names(result)]
    assert "arch_prctl" not in names and "new_call" not in names


def test_a_missing_profile_file_named_in_the_environment_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(seccomp.PROFILE_ENV, str(tmp_path / "nope.json"))
    with pytest.raises(InvalidArgument, match="BERTH_SECCOMP_PROFILE"):
        seccomp.profile_path()
    monkeypatch.setenv(seccomp.PROFILE_ENV, "unconfined")
    assert seccomp.profile_path() is None and seccomp.default_filter([]) is None


def test_sub_architectures_the_kernel_cannot_run_are_left_out(monkeypatch):
    profile = {**PROFILE, "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                                       "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}]}
    result = seccomp.oci_profile(profile, set(), "x86_64", (6, 1),
                                 frozenset({"SCMP_ARCH_X32"}))
    assert result["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    config = "CONFIG_IA32_EMULATION=y\n# CONFIG_X86_X32_ABI is not set\n"
    monkeypatch.setattr(seccomp, "_kernel_config", lambda: config)
    seccomp.missing_abis.cache_clear()
    assert seccomp.missing_abis() == {"SCMP_ARCH_X32"}
    monkeypatch.setattr(seccomp, "_kernel_config", lambda: None)  # unknown: keep them all
    seccomp.missing_abis.cache_clear()
    assert seccomp.missing_abis() == frozenset()
    seccomp.missing_abis.cache_clear()
