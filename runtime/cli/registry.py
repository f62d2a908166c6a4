"""`berth-runtime` verbs for registries (login, logout)."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    """Add this area's verbs to the top-level parser."""
