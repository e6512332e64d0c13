"""Random, readable run names like MLflow's ("bright-heron-42")."""

from __future__ import annotations

import random

__all__ = ["random_run_name"]

_ADJECTIVES = (
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "fast",
    "gentle", "glad", "grand", "keen", "kind", "lively", "lucky", "merry", "neat", "nimble",
    "proud", "quick", "quiet", "rare", "sharp", "shy", "smart", "steady", "sunny", "swift",
    "tidy", "vast", "warm", "wise", "witty", "young", "zesty", "amber", "silver", "golden",
)
_NOUNS = (
    "ant", "bat", "bear", "bee", "bison", "carp", "cat", "colt", "crab", "crow", "deer", "dove",
    "eel", "elk", "finch", "fox", "frog", "goat", "hare", "hawk", "heron", "ibis", "jay", "koala",
    "lark", "lion", "lynx", "mole", "moth", "newt", "owl", "panda", "pike", "quail", "ram",
    "robin", "seal", "shark", "snail", "stork", "swan", "toad", "trout", "wasp", "whale", "wolf",
    "wren", "yak", "zebra",
)


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(0, 999)}"
