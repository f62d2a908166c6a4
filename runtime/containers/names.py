"""Readable container names (adjective_noun) for containers created without `--name`."""

from __future__ import annotations

import secrets
from collections.abc import Container

ADJECTIVES = (
    "able", "amber", "ancient", "brave", "bright", "brisk", "calm", "clever", "cosy", "crisp",
    "daring", "eager", "early", "fancy", "fearless", "gentle", "glad", "golden", "happy",
    "hardy", "honest", "humble", "jolly", "keen", "kind", "lively", "lucid", "mellow", "merry",
    "mighty", "modest", "nimble", "noble", "patient", "plucky", "polite", "proud", "quick",
    "quiet", "rapid", "ready", "serene", "sharp", "shiny", "silent", "steady", "sturdy", "sunny",
    "swift", "tidy", "upbeat", "vivid", "warm", "wise", "witty", "young", "zealous",
)
NOUNS = (
    "anchor", "badger", "beacon", "buoy", "cabin", "canal", "cargo", "channel", "compass",
    "crane", "current", "delta", "dock", "ferry", "fjord", "gull", "harbor", "hull", "inlet",
    "island", "jetty", "keel", "lagoon", "lantern", "lighthouse", "mast", "marina", "narrows",
    "oar", "otter", "pelican", "pier", "pilot", "port", "quay", "reef", "rudder", "sail",
    "schooner", "seal", "shoal", "skiff", "sloop", "sound", "strait", "tide", "tugboat", "wharf",
)


def generate_name(taken: Container[str]) -> str:
    """An adjective_noun name not in `taken`; a numeric suffix once the plain pairs run out."""
    for attempt in range(200):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}"
        if attempt >= 50:
            name = f"{name}{secrets.randbelow(10_000)}"
        if name not in taken:
            return name
    return f"berth_{secrets.token_hex(6)}"
