"""Every parser of user text finishes quickly on any input: random strings and adversarial ones
(long runs of separators, almost-valid names followed by a bad character). A regular expression
that backtracks exponentially turns one API request into minutes of CPU (an image reference of 26
characters and a bad one took minutes), so each call must stay under 50 ms. The fastest of three
calls is what counts: a loaded machine slows a call by a factor, an exponential pattern by
seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panel.fleet.placement import parse_constraint
from panel.stacks.compose import ComposeError, parse_compose
from panel.stacks.compose.interpolation import InterpolationError, substitute
from runtime.containers import options
from runtime.errors import InvalidArgument
from runtime.images.reference import parse_reference
from runtime.network.ports import parse_port_spec

LIMIT = 0.050
EXPECTED = (InvalidArgument, ValueError, InterpolationError, ComposeError, KeyError)

ALPHABET = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z"))
PIECES = ["a", "A", "0", "-", "_", "__", ".", "/", ":", "@", "=", "!", "$", "{", "}", "sha256:",
          "a-", "a.", "a_", "a/", "0:", "${A", ":-", "==", " ", "localhost:5000/"]


def _compose_image(text: str) -> Any:
    return parse_compose(f"services:\n  app:\n    image: {text!r}\n    hostname: {text!r}\n",
                         stack_name="t", environment={})


PARSERS: dict[str, Callable[[str], Any]] = {
    "image reference": parse_reference,
    "container name": options.validate_name,
    "volume spec": options.parse_volume,
    "port spec": parse_port_spec,
    "duration": lambda text: options.parse_duration(text, "--health-interval"),
    "memory": options.parse_memory,
    "signal": options.parse_signal,
    "restart policy": options.parse_restart,
    "label": lambda text: options.parse_labels([text]),
    "env entry": options.parse_env_entry,
    "placement constraint": parse_constraint,
    "compose interpolation": lambda text: substitute(text, {"A": "x"}),
    "compose image and hostname": _compose_image,
}


def _fastest(parser: Callable[[str], Any], text: str) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        try:
            parser(text)
        except EXPECTED:
            pass
        times.append(time.perf_counter() - started)
    return min(times)


def _adversarial() -> st.SearchStrategy[str]:
    run = st.tuples(st.sampled_from(PIECES), st.integers(1, 400)).map(lambda p: p[0] * p[1])
    return st.lists(run, min_size=1, max_size=4).map("".join).flatmap(
        lambda body: st.sampled_from(["", "!", "-", "A", ":", "@", "//", " x"]).map(
            lambda tail: body + tail))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(ALPHABET, max_size=300), _adversarial()))
def test_parser_is_fast_on_any_input(name: str, text: str) -> None:
    elapsed = _fastest(PARSERS[name], text)
    assert elapsed < LIMIT, f"{name} took {elapsed * 1000:.0f} ms on {text[:80]!r}…"


@pytest.mark.parametrize("text", [
    "reallibrephotos/librephotos-proxy:",  # the compose file's `${tag}` unset
    "a" * 26 + "-!", "a-" * 2000 + "!", "a." * 2000 + "!", "a__" * 1500 + "A",
    "A" * 10_000, "localhost:5000/" + "a-" * 3000 + ":" + "t" * 500,
])
def test_image_reference_known_blowups_are_fast_and_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid image reference"):
        parse_reference(text)
    assert _fastest(parse_reference, text) < LIMIT


def test_repository_names_are_lower_case_wherever_the_capital_is() -> None:
    for text in ("MyOrg/app", "Nginx", "team/App", "myorg/app:Tag@sha256:" + "x"):
        with pytest.raises(InvalidArgument, match="lower-case"):
            parse_reference(text)
    # A registry host may be written in capitals, as in distribution; tags may hold them too.
    assert str(parse_reference("Registry.Example.com/app:Tag")) == \
        "Registry.Example.com/app:Tag"


def test_repository_name_longer_than_255_characters_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at most 255"):
        parse_reference("a" * 256)
    assert parse_reference("a" * 255).path == "a" * 255


def test_compose_hostname_may_hold_underscores_as_in_docker() -> None:
    spec = parse_compose("services:\n  db:\n    image: busybox\n    hostname: my_db\n",
                         stack_name="t", environment={})
    assert spec.services["db"].container["hostname"] == "my_db"
    with pytest.raises(ComposeError, match="at most 64"):
        parse_compose(f"services:\n  db:\n    image: busybox\n    hostname: {'h' * 65}\n",
                      stack_name="t", environment={})
