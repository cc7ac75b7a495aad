"""MIDI seeds: load and save, analyse (tempo, meter, key, roles, melody, chords).

Scores are :class:`symusic.Score` objects in ticks. Importing this package
loads symusic and numpy only; :mod:`musegen.midi.pianoroll` imports
matplotlib when a plot is drawn.
"""

from musegen.midi.analysis import (
    CHORD_QUALITIES,
    CHORD_RESOLUTIONS,
    KEY_NAMES,
    ROLES,
    SCALES,
    SeedAnalysis,
    TrackInfo,
    analyze_score,
    chord_name,
    estimate_key,
    key_name,
    parse_chord_name,
    pitch_class_from_name,
    pitch_class_histogram,
    scale_pitch_classes,
)
from musegen.midi.chords import estimate_chords
from musegen.midi.io import load_midi, load_midi_bytes, save_midi, score_digest
from musegen.midi.timing import meter_map, seconds_to_ticks, tempo_map, ticks_to_seconds
from musegen.midi.tracks import describe_tracks, extract_melody

__all__ = [
    "CHORD_QUALITIES",
    "CHORD_RESOLUTIONS",
    "KEY_NAMES",
    "ROLES",
    "SCALES",
    "SeedAnalysis",
    "TrackInfo",
    "analyze_score",
    "chord_name",
    "describe_tracks",
    "estimate_chords",
    "estimate_key",
    "extract_melody",
    "key_name",
    "load_midi",
    "load_midi_bytes",
    "meter_map",
    "parse_chord_name",
    "pitch_class_from_name",
    "pitch_class_histogram",
    "plot_pianoroll",
    "plot_pianorolls",
    "save_midi",
    "scale_pitch_classes",
    "score_digest",
    "seconds_to_ticks",
    "tempo_map",
    "ticks_to_seconds",
]


def __getattr__(name: str):
    # the piano-roll functions need matplotlib: import it only when asked for
    if name in ("plot_pianoroll", "plot_pianorolls"):
        from musegen.midi import pianoroll

        return getattr(pianoroll, name)
    raise AttributeError(f"module 'musegen.midi' has no attribute {name!r}")
