"""Placement: constraints on labels, free memory, image availability, then least loaded."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.fleet.models import Host
from panel.fleet.placement import NoHostFits, PlacementRequest, choose_host, parse_constraint
from panel.workloads import services
from panel.workloads.spec import ValidationFailed

pytestmark = pytest.mark.django_db
MIB = 1024 * 1024


def test_constraints_select_hosts_by_label(make_host):
    make_host("a", labels={"zone": "east"})
    make_host("b", labels={"zone": "west", "ssd": "yes"})
    request = PlacementRequest(constraints=[parse_constraint("zone==west")])
    assert choose_host(request).name == "b"
    request = PlacementRequest(constraints=[parse_constraint("ssd!=yes")])
    assert choose_host(request).name == "a"


def test_no_host_fits_names_each_reason(make_host):
    make_host("a", labels={"zone": "east"}, memory=128 * MIB)
    with pytest.raises(NoHostFits) as caught:
        choose_host(PlacementRequest(memory=256 * MIB))
    assert "a has 128 MiB free, 256 MiB needed" in str(caught.value)
    with pytest.raises(NoHostFits, match="does not match zone==west"):
        choose_host(PlacementRequest(constraints=[parse_constraint("zone==west")]))


def test_memory_reserved_by_placed_containers_counts(make_host, actor, broker):
    make_host("small", memory=300 * MIB)
    make_host("big", memory=1000 * MIB)
    first, _ = services.create_container(actor, {"name": "c1", "image": "busybox",
                                                 "memory": "700m"})
    assert first.host.name == "big"
    # big has 300 MiB left, small 300 MiB; a 400m container fits on neither.
    with pytest.raises(ValidationFailed) as caught:
        services.create_container(actor, {"name": "c2", "image": "busybox", "memory": "400m"})
    assert "no host fits" in caught.value.errors["host"][0]


def test_least_loaded_host_wins(make_host, actor, broker):
    make_host("a")
    make_host("b")
    hosts = [services.create_container(actor, {"name": f"c{i}", "image": "busybox"})[0]
             .host.name for i in range(4)]
    assert sorted(hosts) == ["a", "a", "b", "b"]


def test_image_must_be_on_the_host_unless_pulled(make_host, actor, broker):
    make_host("a", images=("busybox:latest",))
    make_host("b", images=("alpine:latest",))
    container, _ = services.create_container(actor, {"name": "x", "image": "alpine"})
    assert container.host.name == "b"


def test_down_hosts_are_never_chosen(make_host, actor, broker):
    make_host("a")
    make_host("b")
    Host.objects.filter(name="a").update(
        last_heartbeat=timezone.now() - datetime.timedelta(seconds=60))
    for i in range(3):
        container, _ = services.create_container(actor, {"name": f"c{i}", "image": "busybox"})
        assert container.host.name == "b"


def test_pinned_host_that_is_down_is_refused(make_host, actor, broker):
    make_host("a")
    Host.objects.filter(name="a").update(
        last_heartbeat=timezone.now() - datetime.timedelta(seconds=60))
    with pytest.raises(ValidationFailed) as caught:
        services.create_container(actor, {"name": "c", "image": "busybox", "host": "a"})
    assert "down" in caught.value.errors["host"][0]
