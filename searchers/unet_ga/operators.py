"""Genetic operators of the U-Net GA (seed 002, section 2.2 and 3.4), on the codes ``(c1, c2)``.

The paper runs the GA "separately for channel number code c1 and connection code c2" (3.4): we
read it as every operator acting on each code on its own (a crossover swaps a random piece of c1
and, independently, a random piece of c2; a mutation changes one element of c1 and one of c2),
one operation per offspring. Each function takes the ``random.Random`` it draws from.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def roulette(rng: random.Random, fitnesses: Sequence[float]) -> int | None:
    """Index drawn with probability f_j / sum_k f_k (eq. 4); zero, negative or non-finite fitness
    (failed candidates) is never drawn; ``None`` when nothing has positive fitness."""
    weights = [f if math.isfinite(f) and f > 0 else 0.0 for f in fitnesses]
    total = sum(weights)
    if total <= 0:
        return None
    point = rng.random() * total
    cumulative, last = 0.0, None
    for index, weight in enumerate(weights):
        if weight <= 0:
            continue
        cumulative += weight
        last = index
        if point < cumulative:
            return index
    return last  # rounding at the very top


def rank_select(rng: random.Random, fitnesses: Sequence[float]) -> int | None:
    """Linear rank selection (Baker 1985): the j-th worst of n positive-fitness individuals is drawn
    with probability j / (1 + ... + n), so the best is n times as likely as the worst however close
    their fitnesses are (roulette over f in [0.58, 0.66] makes it only 1.14x as likely). Not in seed
    002 (which uses roulette, eq. 4): an option. Ties share the same rank order by index."""
    alive = [i for i, f in enumerate(fitnesses) if math.isfinite(f) and f > 0]
    if not alive:
        return None
    order = sorted(alive, key=lambda i: fitnesses[i])
    point = rng.random() * len(order) * (len(order) + 1) / 2
    cumulative = 0.0
    for rank, index in enumerate(order, start=1):
        cumulative += rank
        if point < cumulative:
            return index
    return order[-1]


SELECTIONS = {"roulette": roulette, "rank": rank_select}


def swap_piece(rng: random.Random, a: Sequence[T], b: Sequence[T]) -> tuple[list[T], list[T]]:
    """Two-point crossover: a random contiguous piece [i, j) is swapped between ``a`` and ``b``."""
    if len(a) != len(b) or not a:
        raise ValueError(f"crossover needs two codes of one non-zero length, got {len(a)} and {len(b)}")
    i = rng.randrange(len(a))
    j = rng.randrange(i + 1, len(a) + 1)
    return list(a[:i]) + list(b[i:j]) + list(a[j:]), list(b[:i]) + list(a[i:j]) + list(b[j:])


def crossover(
    rng: random.Random, first: tuple[list[int], list[bool]], second: tuple[list[int], list[bool]]
) -> tuple[tuple[list[int], list[bool]], tuple[list[int], list[bool]]]:
    """Two offspring: a random piece of c1 and a random piece of c2 swapped between the parents."""
    c1_a, c1_b = swap_piece(rng, first[0], second[0])
    c2_a, c2_b = swap_piece(rng, first[1], second[1])
    return (c1_a, c2_a), (c1_b, c2_b)


def mutate_width(rng: random.Random, c1: Sequence[int], widths: Sequence[int]) -> list[int]:
    """One random element of c1 takes a width drawn from S1 without its current value (section 3.4)."""
    child = list(c1)
    position = rng.randrange(len(child))
    others = [w for w in widths if w != child[position]]
    if others:
        child[position] = rng.choice(others)
    return child


def flip_bit(rng: random.Random, c2: Sequence[bool]) -> list[bool]:
    """XOR mutation of one random skip bit."""
    child = list(c2)
    position = rng.randrange(len(child))
    child[position] = not child[position]
    return child


def mutate(
    rng: random.Random, parent: tuple[list[int], list[bool]], widths: Sequence[int]
) -> tuple[list[int], list[bool]]:
    """One offspring: one width of c1 changed to another value of S1 and one bit of c2 flipped."""
    return mutate_width(rng, parent[0], widths), flip_bit(rng, parent[1])
