"""Procedural engine: rule-based composition from a style preset.

Modules, lowest first: ``chance`` (seeded choices), ``meter`` (the grid),
``theory`` (scales, roman numerals, chords), ``form`` (phrases), ``harmony``
(progressions, chorale harmonization), ``rhythm`` and ``melody``
(motif-based lines), ``voicing``, ``accompaniment`` (chord textures),
``counterpoint`` (chorale and imitative voices), ``bass``, ``drums``,
``groove`` (swing, humanize), ``arrange`` (parts -> Score), ``compose``
(from scratch), ``seed`` and ``continuation`` (continuing a MIDI seed) and
``engine`` (the :class:`ProceduralEngine` itself).
"""

from musegen.engines.procedural.engine import ProceduralEngine

__all__ = ["ProceduralEngine"]
