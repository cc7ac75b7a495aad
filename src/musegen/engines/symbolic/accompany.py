"""Drums and bass under the model's parts, arranged by the procedural engine."""

from __future__ import annotations


def add_accompaniment(score, request, start_tick: int, written: dict[int, int], *, variation: int) -> dict:
    """Placeholder until wired to the procedural arranger: adds nothing."""
    return {}
