"""ContainerSpec, the one typed list of a container's fields: round trip, defaults, strict
decoding with errors naming the field, the field table the other layers read, the deploy-hash
form, and the agent's spec -> RunOptions mapping by field name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runtime.agent.specs import passthrough_fields, run_options, unsupported_fields
from runtime.containers.options import RunOptions
from runtime.protocol import (
    LEGACY_HASH_FIELDS,
    ContainerSpec,
    SpecInvalid,
    check_formats,
    default_of,
    field_names,
    hash_form,
    is_default,
    spec_fields,
)

CONTRACT_FIELDS = {
    "name", "image", "pull", "command", "entrypoint", "env", "ports", "volumes", "networks",
    "memory", "cpus", "restart", "healthcheck", "labels", "init", "constraints", "user",
    "workdir", "hostname", "read_only", "stop_signal", "stop_timeout", "pids_limit",
    "network_aliases", "port_group", "cap_add", "cap_drop", "privileged", "security_opt",
    "devices", "sysctls", "ulimits", "tmpfs", "shm_size", "extra_hosts", "dns", "dns_search",
    "dns_opt", "pid", "ipc", "network_mode", "expose", "logging", "platform",
    "memory_reservation", "cpus_reservation", "group_add", "files", "stack_dir"}


def test_the_spec_has_exactly_the_contract_fields_each_typed_and_documented() -> None:
    assert set(field_names()) == CONTRACT_FIELDS
    for info in spec_fields():
        assert info.doc and info.type, info.name
        assert is_default(info.name, info.default)


def test_defaults_mean_as_before() -> None:
    spec = ContainerSpec(image="busybox:latest")
    assert (spec.cap_add, spec.privileged, spec.sysctls, spec.shm_size, spec.pid,
            spec.user, spec.read_only, spec.restart, spec.entrypoint) == \
        ([], False, {}, 0, "", None, False, "no", None)
    assert spec.changed() == {"image": "busybox:latest"}


def test_round_trip_through_json_keeps_every_field() -> None:
    spec = ContainerSpec(
        name="db", image="postgres:16", command=["postgres"], env=["A=1"], user="999",
        read_only=True, hostname="my_db", stop_signal="SIGINT", stop_timeout=30,
        cap_add=["NET_ADMIN"], sysctls={"net.core.somaxconn": "1024"},
        ulimits={"nofile": {"soft": 1024, "hard": 4096}}, shm_size=1 << 27, cpus=1.5,
        logging={"driver": "local", "options": {"max-size": "10m"}}, network_mode="none",
        files=[{"target": "/run/secrets/pw", "content": "aHVudGVyMg==", "mode": 0o400}])
    data = json.loads(json.dumps(spec.to_dict()))
    assert ContainerSpec.from_dict(data) == spec
    assert set(data) == CONTRACT_FIELDS


def test_missing_fields_take_their_defaults_and_null_means_unset() -> None:
    spec = ContainerSpec.from_dict({"image": "busybox", "cap_add": None, "user": None})
    assert spec == ContainerSpec(image="busybox")


def test_an_unknown_field_is_refused_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(SpecInvalid) as caught:
        ContainerSpec.from_dict({"image": "busybox", "capabilities": ["NET_ADMIN"]})
    message = caught.value.errors["capabilities"][0]
    assert message.startswith("unknown field: allowed name, image,") and "cap_add" in message


def test_wrong_types_are_refused_per_field() -> None:
    with pytest.raises(SpecInvalid) as caught:
        ContainerSpec.from_dict({"image": "busybox", "cap_add": "NET_ADMIN", "privileged": 1,
                                 "memory": True, "sysctls": {"net.x": 1},
                                 "ulimits": {"nofile": 5}, "cpus": "2"})
    errors = caught.value.errors
    assert set(errors) == {"cap_add", "privileged", "memory", "sysctls", "ulimits", "cpus"}
    assert errors["cap_add"] == ["must be a list of strings"]
    assert errors["privileged"] == ["must be true or false"]
    assert "soft" in errors["ulimits"][0]
    assert "cap_add: must be a list of strings" in str(caught.value)


def test_an_int_is_accepted_for_a_float_field() -> None:
    assert ContainerSpec.from_dict({"cpus": 2}).cpus == 2.0


def test_format_rules_of_the_enumerated_fields() -> None:
    assert check_formats(ContainerSpec(pid="host", ipc="container:db",
                                       network_mode="container:web", cap_add=["CAP_NET_RAW"],
                                       logging={"driver": "none"})) == {}
    errors = check_formats(ContainerSpec(pid="container:x", ipc="bogus", network_mode="bridge",
                                         cap_add=["net admin"], logging={"driver": "syslog"},
                                         shm_size=-1))
    assert set(errors) == {"pid", "ipc", "network_mode", "cap_add", "logging", "shm_size"}


def test_the_hash_form_keeps_legacy_fields_and_drops_new_ones_at_their_default() -> None:
    container = {key: default_of(key) for key in field_names()}
    form = hash_form(container)
    assert set(form) == set(LEGACY_HASH_FIELDS)
    assert hash_form({**container, "cap_add": ["NET_ADMIN"]})["cap_add"] == ["NET_ADMIN"]
    assert hash_form({"unknown_key": 1}) == {"unknown_key": 1}


def test_the_agent_maps_spec_fields_to_run_options_by_name() -> None:
    shared = {f.name for f in dataclasses.fields(RunOptions)} & set(field_names())
    assert {"user", "workdir", "hostname", "read_only", "stop_signal", "stop_timeout",
            "pids_limit", "network_aliases"} <= set(passthrough_fields()) <= shared
    options = run_options({"uid": "u1", "image": "busybox", "user": "1000", "read_only": True,
                           "hostname": "h", "stop_signal": "SIGINT", "port_group": "g",
                           "constraints": ["zone==a"], "pull": True})
    assert (options.user, options.read_only, options.hostname, options.stop_signal) == \
        ("1000", True, "h", "SIGINT")
    assert options.labels["berth.port_group"] == "g"


def test_the_agent_refuses_a_set_field_its_runtime_does_not_have(monkeypatch) -> None:
    """An agent older than the panel (its RunOptions lacks `cap_add`) refuses a spec that sets
    it, rather than create the container without it."""
    from runtime.agent import specs

    monkeypatch.setattr(specs, "_RUN_OPTION_NAMES", specs._RUN_OPTION_NAMES - {"cap_add"})
    assert unsupported_fields({"cap_add": ["NET_ADMIN"]}) == ["cap_add"]
    assert unsupported_fields({"cap_add": []}) == []
    assert unsupported_fields({"constraints": ["a==b"], "port_group": "g", "pull": True}) == []
    with pytest.raises(Exception, match="spec.cap_add is not supported"):
        run_options({"uid": "u1", "image": "busybox", "cap_add": ["NET_ADMIN"]})
    assert "cap_add" not in specs.passthrough_fields()
