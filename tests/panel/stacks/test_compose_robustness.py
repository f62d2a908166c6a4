"""Whatever the text, parse_compose either returns a spec that exports and parses back to
itself, or raises ComposeError with positions: never another exception (an API 500)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from panel.stacks.compose import ComposeError, export_compose, parse_compose

CASES = Path(__file__).parent / "compose_cases"
ENVIRONMENT = {"HTTP_PORT": "8081", "REPLICAS": "2", "HOST": "h", "FROM_STACK": "x"}
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, float("inf"), "", " ", "$", "${", "/", "a:b:c:d", "..", [], {},
    [None], {"a": None}, [[]], "99999", "1e400", "node.labels.a==b", ["CMD"], "0-0",
    "65535-1", {"target": "80"}, {"type": None}, ":", "::", "10.0.0.0/33", "-1s",
]
SYNTAX = list(" :-[]{}&*<!|>'\"#$\n\t,?%@`0aZ/.")


def _texts() -> list[str]:
    return [path.read_text() for path in sorted(CASES.glob("*.yml"))]


def _check(text: str) -> None:
    try:
        spec = parse_compose(text, stack_name="fuzz", environment=ENVIRONMENT,
                             allow_bind_mounts=True)
    except ComposeError as exc:
        assert exc.errors
        assert all(e["line"] >= 1 and e["column"] >= 1 and e["message"] for e in exc.errors)
        return
    assert parse_compose(export_compose(spec), allow_bind_mounts=True).to_dict() == \
        spec.to_dict()


def _mutate(node: Any, rng: random.Random) -> Any:
    if isinstance(node, dict):
        return {key: rng.choice(ODD_VALUES) if rng.random() < 0.2 else _mutate(value, rng)
                for key, value in node.items() if rng.random() > 0.03}
    if isinstance(node, list):
        return [rng.choice(ODD_VALUES) if rng.random() < 0.2 else _mutate(value, rng)
                for value in node]
    return node


def test_values_of_the_wrong_kind_anywhere_are_refused_cleanly() -> None:
    rng = random.Random(20240601)
    documents = [yaml.safe_load(text) for text in _texts()]
    for _ in range(300):
        _check(yaml.safe_dump(_mutate(rng.choice(documents), rng)))


def test_damaged_yaml_is_refused_cleanly() -> None:
    rng = random.Random(7)
    texts = _texts()
    for _ in range(300):
        chars = list(rng.choice(texts))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars))
            choice = rng.random()
            if choice < 0.4:
                del chars[position]
            elif choice < 0.8:
                chars.insert(position, rng.choice(SYNTAX))
            else:
                chars[position] = rng.choice(SYNTAX)
        _check("".join(chars))
