"""Variable interpolation as Compose does it (with unset variables refused), and the YAML
loader's defences: where each failure is reported, and what is never interpolated."""

from __future__ import annotations

import textwrap

import pytest

from panel.stacks.compose import ComposeError, parse_compose
from panel.stacks.compose.interpolation import InterpolationError, substitute

ENV = {"SET": "value", "EMPTY": "", "PORT": "8080", "N": "3", "YES": "true"}


@pytest.mark.parametrize(("text", "expected"), [
    ("${SET}", "value"),
    ("$SET", "value"),
    ("pre-$SET-post", "pre-value-post"),
    ("$SET_SUFFIX_IS_PART_OF_THE_NAME${SET}", "value"),  # an unset name: "" (a warning)
    ("${UNSET}", ""),
    ("$UNSET", ""),
    ("${UNSET:-${ALSO_UNSET}}", ""),
    ("${SET:-default}", "value"),
    ("${EMPTY:-default}", "default"),
    ("${UNSET:-default}", "default"),
    ("${SET-default}", "value"),
    ("${EMPTY-default}", ""),
    ("${UNSET-default}", "default"),
    ("${UNSET:-}", ""),
    ("${UNSET:-${SET}}", "value"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${UNSET:-a}b${SET}", "abvalue"),
    ("${SET:?must be set}", "value"),
    ("${EMPTY?only unset fails}", ""),
    ("${SET:+other}", "other"),
    ("${EMPTY:+other}", ""),
    ("${EMPTY+other}", "other"),
    ("${UNSET+other}", ""),
    ("$$", "$"),
    ("$${SET}", "${SET}"),
    ("$$$SET", "$value"),
    ("cost: $$5", "cost: $5"),
    ("no variables", "no variables"),
])
def test_substitute(text: str, expected: str | None) -> None:
    assert substitute(text, ENV) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("${UNSET:?tell me the port}", "variable UNSET is required: tell me the port"),
    ("${EMPTY:?}", "variable EMPTY is required: set EMPTY"),
    ("${UNSET?}", "variable UNSET is required"),
    ("a $ b", "a lone $"),
    ("trailing $", "a lone $"),
    ("${", "unclosed ${"),
    ("${SET", "unclosed ${"),
    ("${}", "invalid interpolation ${}"),
    ("${1BAD}", "invalid interpolation ${1BAD}"),
    ("${SET:x}", "invalid interpolation ${SET:x}"),
])
def test_substitute_refuses(text: str, fragment: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        substitute(text, ENV)
    assert fragment in str(caught.value)


def test_interpolation_error_names_the_line_and_column() -> None:
    text = textwrap.dedent("""\
        services:
          web:
            image: nginx
            environment:
              A: ok
              B: "${UNSET}"
            ports:
              - "${MISSING_PORT:?set the port}:80"
        """)
    with pytest.raises(ComposeError) as caught:
        parse_compose(text, stack_name="shop", environment=ENV)
    assert [(e["path"], e["line"], e["column"], e["message"].split(":")[0])
            for e in caught.value.errors] == [
        ("services.web.ports[0]", 8, 9, "variable MISSING_PORT is required")]


def test_an_unset_variable_becomes_empty_with_a_warning_at_its_line() -> None:
    """As Compose does: ${VAR} unset is "" and a warning per variable, not an error."""
    spec = parse_compose(textwrap.dedent("""\
        services:
          web:
            image: "nginx${TAG}"
            environment:
              B: "${UNSET}-${UNSET}-$OTHER"
        """), stack_name="shop", environment=ENV)
    assert spec.services["web"].container["image"] == "nginx:latest"
    assert spec.services["web"].container["env"]["B"] == "--"
    assert [(w["path"], w["line"], w["message"].split(":")[0]) for w in spec.warnings] == [
        ("services.web.image", 3, "variable TAG is not set"),
        ("services.web.environment.B", 5, "variable OTHER is not set"),
        ("services.web.environment.B", 5, "variable UNSET is not set")]
    assert "warnings" not in spec.to_dict()  # not part of the stored spec


def test_a_refused_key_whose_value_interpolates_to_empty_is_not_refused() -> None:
    spec = parse_compose(textwrap.dedent("""\
        services:
          web:
            image: nginx
            runtime: ${RUNTIME:-}
        """), stack_name="shop", environment=ENV)
    assert "web" in spec.services


def test_interpolated_numbers_and_booleans_are_cast_where_expected() -> None:
    spec = parse_compose(textwrap.dedent("""\
        services:
          web:
            image: nginx
            init: ${YES}
            ports: ["${PORT}:80"]
            healthcheck: {test: "true", retries: "${N}"}
            deploy: {replicas: "${N}", update_config: {parallelism: $N}}
        """), stack_name="shop", environment=ENV)
    web = spec.services["web"]
    assert (web.replicas, web.update_config["parallelism"]) == (3, 3)
    assert web.container["init"] is True and web.container["healthcheck"]["retries"] == 3
    assert web.container["ports"] == ["8080:80"]


def test_literal_strings_are_not_cast_to_numbers() -> None:
    with pytest.raises(ComposeError) as caught:
        parse_compose('services: {web: {image: nginx, deploy: {replicas: "3"}}}',
                      stack_name="shop")
    assert caught.value.errors[0]["path"] == "services.web.deploy.replicas"
    assert "whole number" in caught.value.errors[0]["message"]


def test_keys_and_unused_extension_fields_are_not_interpolated() -> None:
    spec = parse_compose(textwrap.dedent("""\
        x-template:
          command: ${NOT_NEEDED:?only when used}
        services:
          web:
            image: nginx
            labels:
              "${KEY}": "${SET}"
        """), stack_name="shop", environment=ENV)
    assert spec.services["web"].container["labels"] == {"${KEY}": "value"}


def test_extension_fields_are_interpolated_where_a_service_uses_them() -> None:
    text = textwrap.dedent("""\
        x-common: &common
          environment:
            MODE: ${MODE:-dev}
        services:
          web:
            <<: *common
            image: nginx
        """)
    spec = parse_compose(text, stack_name="shop", environment={"MODE": "prod"})
    assert spec.services["web"].container["env"] == {"MODE": "prod"}
    assert parse_compose(text, stack_name="shop").services["web"].container["env"] == \
        {"MODE": "dev"}


def test_the_stacks_environment_fills_bare_variables() -> None:
    spec = parse_compose(textwrap.dedent("""\
        services:
          web:
            image: nginx
            environment: [SET, NOT_IN_STACK, EXPLICIT=1]
        """), stack_name="shop", environment=ENV)
    assert spec.services["web"].container["env"] == {"EXPLICIT": "1", "SET": "value"}


def test_alias_bomb_is_refused() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        previous = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        levels.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    text = "x-bomb:\n" + "\n".join("  " + line for line in levels) + \
        "\nservices: {web: {image: nginx}}\n"
    with pytest.raises(ComposeError) as caught:
        parse_compose(text, stack_name="shop")
    assert "aliases" in caught.value.errors[0]["message"]


def test_recursive_alias_is_refused() -> None:
    text = textwrap.dedent("""\
        x-loop: &loop
          again: *loop
        services: {web: {image: nginx}}
        """)
    with pytest.raises(ComposeError) as caught:
        parse_compose(text, stack_name="shop")
    assert any("recursive" in e["message"] for e in caught.value.errors)


def test_merge_key_precedence() -> None:
    spec = parse_compose(textwrap.dedent("""\
        x-a: &a {restart: always, init: true}
        x-b: &b {restart: on-failure, user: nobody}
        services:
          web:
            <<: [*a, *b]
            image: nginx
            user: www
        """), stack_name="shop")
    c = spec.services["web"].container
    assert (c["restart"], c["init"], c["user"]) == ("always", True, "www")


def test_multiple_documents_are_refused() -> None:
    with pytest.raises(ComposeError) as caught:
        parse_compose("services: {a: {image: x}}\n---\nservices: {b: {image: y}}\n",
                      stack_name="shop")
    assert caught.value.errors[0]["line"] == 2
    assert "single document" in caught.value.errors[0]["message"]
