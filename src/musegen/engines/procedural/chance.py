"""Seeded randomness: per-variation seeds and temperature-scaled choices.

Every random decision in the procedural engine goes through a
:class:`random.Random` made by :func:`make_rng`; nothing touches global state.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts`` (stable across runs and platforms)."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def make_rng(*parts: int | str) -> random.Random:
    """A private generator seeded from ``parts``."""
    return random.Random(derive_seed(*parts))


def choose(rng: random.Random, items: Sequence[T], weights: Sequence[float] | None = None,
           temperature: float = 1.0) -> T:
    """Pick one item; ``temperature`` > 1 flattens the weights, < 1 sharpens them."""
    if not items:
        raise ValueError("choose() needs at least one item")
    if weights is None:
        return items[rng.randrange(len(items))]
    t = max(temperature, 0.05)
    w = [max(x, 0.0) ** (1.0 / t) for x in weights]
    total = sum(w)
    if total <= 0:
        return items[rng.randrange(len(items))]
    r = rng.random() * total
    for item, x in zip(items, w):
        r -= x
        if r < 0:
            return item
    return items[-1]


def choose_by_cost(rng: random.Random, items: Sequence[T], costs: Sequence[float],
                   temperature: float = 1.0, sharpness: float = 2.0) -> T:
    """Pick an item with probability ``exp(-sharpness * cost / temperature)``."""
    if not items:
        raise ValueError("choose_by_cost() needs at least one item")
    t = max(temperature, 0.05)
    best = min(costs)
    w = [math.exp(-sharpness * (c - best) / t) for c in costs]
    total = sum(w)
    r = rng.random() * total
    for item, x in zip(items, w):
        r -= x
        if r < 0:
            return item
    return items[-1]


def chance(rng: random.Random, p: float) -> bool:
    """True with probability ``p`` (clipped to 0..1)."""
    return rng.random() < min(max(p, 0.0), 1.0)
