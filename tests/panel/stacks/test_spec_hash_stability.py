"""Deploy hashes survive the one-container-spec change: what today's code resolved and hashed
at c175823 (hash_fixtures/resolved_at_c175823.json, written by that code) hashes the same now,
whether it is read back from a stored revision or resolved again from its compose file, and a
field added to the spec changes a hash only when a file sets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from panel.stacks.compose import StackSpec, container_spec_hash, service_spec_hash
from panel.stacks.resolve import replica_hash, resolve
from runtime.protocol import LEGACY_HASH_FIELDS, field_names

FIXTURE = json.loads((Path(__file__).parent / "hash_fixtures" / "resolved_at_c175823.json")
                     .read_text())
CASES = {case["file"]: case for case in FIXTURE["cases"]}
PINNED = "sha256:" + "ab" * 32


def _hashes(spec: StackSpec, case: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: {"container_spec_hash": container_spec_hash(service),
                   "service_spec_hash": service_spec_hash(service),
                   "replica_hash": replica_hash(spec, name, case["secret_digests"], ""),
                   "replica_hash_pinned": replica_hash(spec, name, case["secret_digests"],
                                                       PINNED)}
            for name, service in spec.services.items()}


def _resolve(case: dict[str, Any]) -> StackSpec:
    return resolve(case["stack"], case["compose"], case["environment"],
                   {key: "s3cret" for key in case["secrets"]},
                   allow_bind_mounts=case["allow_bind_mounts"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_revision_stored_by_the_old_code_hashes_as_it_did(name: str) -> None:
    case = CASES[name]
    assert _hashes(StackSpec.from_dict(case["spec"]), case) == case["services"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_same_compose_file_resolves_to_the_same_stored_spec_and_hashes(name: str) -> None:
    case = CASES[name]
    spec = _resolve(case)
    assert spec.to_dict() == case["spec"]
    assert _hashes(spec, case) == case["services"]


def test_a_new_field_at_its_default_changes_no_hash_and_a_set_one_does() -> None:
    case = CASES["legacy_deploy"]
    spec = StackSpec.from_dict(case["spec"])
    web = spec.services["web"]
    new_fields = [f for f in field_names() if f not in LEGACY_HASH_FIELDS]
    assert "cap_add" in new_fields and "sysctls" in new_fields
    from runtime.protocol import default_of

    web.container.update({key: default_of(key) for key in new_fields})
    assert container_spec_hash(web) == case["services"]["web"]["container_spec_hash"]
    web.container.update({key: None for key in new_fields})  # unset, as a front end may leave
    assert container_spec_hash(web) == case["services"]["web"]["container_spec_hash"]
    web.container["cap_add"] = ["NET_ADMIN"]
    assert container_spec_hash(web) != case["services"]["web"]["container_spec_hash"]
