"""Tokenization for the symbolic model: miditok REMI plus conditioning tokens.

A sequence is ``BOS STYLE_x KEY_y`` followed by REMI tokens (Bar, TimeSig,
Position, Tempo, Program, Pitch/PitchDrum, Velocity, Duration).

Programs are *canonical*: a track's role decides its program token, so the
model learns parts rather than 128 timbres.  The melody part is program 72,
the bass part 32, drums are drums, and every other part keeps its GM family
(``program // 8 * 8``).  :func:`canonicalize` returns the mapping back to the
real tracks, so a continuation lands in the sketch's own tracks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from symusic import Score

MELODY_PROGRAM = 72
BASS_PROGRAM = 32
#: the style tokens of each tokenizer version.  Version 1 is the shipped model's vocabulary (its
#: ``tokenizer.json`` keeps loading as it is); version 2 adds the sources of issue 15 after the
#: key tokens, so the ids of every version-1 special token stay where they were.
STYLES_BY_VERSION = {
    1: ("pop", "chorale", "folk", "polyphony", "classical"),
    2: ("pop", "chorale", "folk", "polyphony", "classical", "drums", "piano", "lieder", "leadsheet"),
}
#: the version :func:`build_tokenizer` makes when none is asked for (the shipped model's)
TOKENIZER_VERSION = 1
MODEL_STYLES = STYLES_BY_VERSION[1]
#: preset styles -> the data source the model knows that is nearest
STYLE_TO_MODEL = {
    "pop": "pop", "hiphop": "pop", "electronic": "pop", "latin": "pop", "jazz": "pop", "game": "folk",
    "chorale": "chorale", "folk": "folk", "polyphony": "polyphony", "classical": "classical",
    "ambient": "classical", "cinematic": "classical",
}
MODES = ("major", "minor")
SPECIAL = ["PAD", "BOS", "EOS"] + [f"STYLE_{s}" for s in MODEL_STYLES] + [
    f"KEY_{pc}{m[:3]}" for m in MODES for pc in range(12)
]


def special_tokens(version: int = TOKENIZER_VERSION) -> list[str]:
    """The special tokens of tokenizer ``version``: version 1's, then the styles added since."""
    if version not in STYLES_BY_VERSION:
        from musegen.errors import ParameterError

        raise ParameterError(f"tokenizer version must be one of {sorted(STYLES_BY_VERSION)}, got {version!r}")
    return SPECIAL + [f"STYLE_{s}" for s in STYLES_BY_VERSION[version] if s not in MODEL_STYLES]


def tokenizer_config_dict(version: int = TOKENIZER_VERSION) -> dict:
    """The REMI settings of tokenizer ``version`` (kept in one place; saved with every checkpoint)."""
    return {
        "pitch_range": (21, 109),
        "beat_res": {(0, 4): 8, (4, 12): 4},
        "num_velocities": 8,
        "special_tokens": special_tokens(version),
        "use_tempos": True,
        "num_tempos": 24,
        "tempo_range": (40, 240),
        "use_time_signatures": True,
        "time_signature_range": {8: [3, 6, 9, 12], 4: [1, 2, 3, 4, 5, 6], 2: [1, 2, 3, 4]},
        "use_programs": True,
        "one_token_stream_for_programs": True,
        "programs": sorted({p // 8 * 8 for p in range(128)} | {MELODY_PROGRAM, BASS_PROGRAM, -1}),
        "use_sustain_pedals": False,
        "use_pitch_bends": False,
        "use_chords": False,
        "use_rests": False,
    }


def _miditok():
    """miditok, imported without dragging torch in.

    miditok's package init imports its PyTorch data helpers, and with them torch
    (about a second), whenever torch is installed, inside a ``try`` that skips
    them on ImportError.  Sampling never uses them, so unless torch is already
    loaded, ``import torch`` is made to fail for the length of that import; the
    block is lifted at once, so a later ``import torch`` works as usual.
    """
    import sys

    if "miditok" in sys.modules or "torch" in sys.modules:
        import miditok

        return miditok
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        import miditok
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return miditok


def build_tokenizer(path: str | Path | None = None, *, version: int = TOKENIZER_VERSION):
    """A miditok REMI tokenizer: from a saved ``tokenizer.json``, or tokenizer ``version``'s settings."""
    miditok = _miditok()
    if path is not None:
        return miditok.REMI(params=Path(path))
    return miditok.REMI(miditok.TokenizerConfig(**tokenizer_config_dict(version)))


def model_styles(tokenizer) -> tuple[str, ...]:
    """The styles a tokenizer has tokens for, in id order (a corpus's style codes index this)."""
    vocab = tokenizer.vocab
    names = [t[len("STYLE_"):].rsplit("_None", 1)[0] for t in vocab if t.startswith("STYLE_")]
    return tuple(sorted(names, key=lambda s: vocab[f"STYLE_{s}"]))


@dataclass
class PartMap:
    """Canonical program -> the original track it came from (for decoding back)."""

    tracks: dict[int, int]  # canonical program (-1 = drums) -> original track index



def canonical_program(program: int, is_drum: bool, role: str) -> int:
    if is_drum or role == "drums":
        return -1
    if role == "melody":
        return MELODY_PROGRAM
    if role == "bass":
        return BASS_PROGRAM
    fam = program // 8 * 8
    return 0 if fam in (MELODY_PROGRAM, BASS_PROGRAM) else fam


def canonicalize(score: Score, infos: list | None = None) -> tuple[Score, PartMap]:
    """A copy of ``score`` with canonical programs, and where each came from.

    Parameters
    ----------
    score : Score
    infos : list of TrackInfo, optional
        From :func:`musegen.midi.tracks.describe_tracks` (computed when not
        given).  Of several melody-like tracks only the highest is the melody;
        the others count as accompaniment.  Where several tracks share a
        canonical program, the map points at the one with the most notes.
    """
    if infos is None:
        from musegen.midi.tracks import describe_tracks

        infos = describe_tracks(score)
    roles = [t.role for t in infos]
    melodic = [i for i, r in enumerate(roles) if r == "melody"]
    if len(melodic) > 1:
        top = max(melodic, key=lambda i: infos[i].pitch_median)
        roles = [("harmony" if (r == "melody" and i != top) else r) for i, r in enumerate(roles)]
    out = score.copy()
    mapping: dict[int, int] = {}
    # each canonical part goes back into the track of that part with the most notes; a track
    # without notes (a song's melody track that starts after the sketch's bars) is no part
    any_notes = any(len(t.notes) for t in out.tracks)
    for i, (trk, role) in enumerate(zip(out.tracks, roles)):
        prog = canonical_program(int(trk.program), bool(trk.is_drum), role)
        if len(trk.notes) or not any_notes:
            if prog not in mapping or len(trk.notes) > len(out.tracks[mapping[prog]].notes):
                mapping[prog] = i
        if prog == -1:
            trk.is_drum = True
            trk.program = 0
        else:
            trk.is_drum = False
            trk.program = prog
    return out, PartMap(mapping)


def condition_tokens(tokenizer, style: str, tonic: int, mode: str) -> list[int]:
    """``[BOS, STYLE_x, KEY_y]`` ids; style is mapped onto a data source the model knows."""
    s = STYLE_TO_MODEL.get(style, style)
    if f"STYLE_{s}" not in tokenizer.vocab:  # a style of a later tokenizer version
        s = "pop"
    from musegen.theory import MINOR_MODES

    quality = "min" if mode in MINOR_MODES else "maj"
    v = tokenizer.vocab
    return [v["BOS_None"], v[f"STYLE_{s}"], v[f"KEY_{tonic % 12}{quality}"]]


def encode(tokenizer, score: Score) -> list[int]:
    """REMI ids of a (canonical) score, no special tokens."""
    seq = tokenizer.encode(score)
    if isinstance(seq, list):  # multi-stream configs; ours is one stream
        seq = seq[0]
    return list(seq.ids)


def decode(tokenizer, ids: list[int]) -> Score:
    """A score from REMI ids; special tokens are skipped."""
    specials = set(tokenizer.special_tokens_ids)
    body = [i for i in ids if i not in specials]
    return tokenizer.decode(body)

