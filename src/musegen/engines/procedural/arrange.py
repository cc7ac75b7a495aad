"""Assembling parts into a :class:`symusic.Score`.

A :class:`Part` is one track's worth of notes with its role, GM program and
name; :func:`build_score` adds the tempo, time-signature and key-signature
events and writes every part as a track, in role order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from musegen.engines.procedural.theory import key_signature

ROLE_ORDER = {"lead": 0, "harmony": 1, "pad": 2, "bass": 3, "drums": 4}


@dataclass
class Part:
    """Notes ``[start, dur, pitch, vel]`` (ticks) for one track."""

    name: str
    role: str
    program: int
    is_drum: bool = False
    notes: list[list[int]] = field(default_factory=list)

    def describe(self) -> dict:
        return {"name": self.name, "role": self.role, "program": self.program, "is_drum": self.is_drum,
                "n_notes": len(self.notes)}


def monophonic(notes: list[list[int]], gap: int = 0) -> list[list[int]]:
    """Sort and cut each note so it ends before the next one starts (one line, no overlaps)."""
    notes = sorted(notes)
    out = []
    for i, n in enumerate(notes):
        if out and out[-1][0] == n[0]:
            continue
        out.append(list(n))
    for a, b in zip(out, out[1:]):
        if a[0] + a[1] > b[0] - gap:
            a[1] = max(1, b[0] - a[0] - gap)
    return out


def clip(notes: list[list[int]], lo: int, hi: int) -> list[list[int]]:
    """Keep notes starting in ``[lo, hi)``, ending by ``hi``, pitches and velocities in MIDI range."""
    out = []
    for s, d, p, v in notes:
        if s < lo or s >= hi or not 0 <= p <= 127:
            continue
        out.append([int(s), int(max(1, min(d, hi - s))), int(p), int(max(1, min(127, v)))])
    return out


def note_list(notes: list[list[int]]):
    """A symusic note list from ``[start, dur, pitch, vel]`` rows, sorted by start and pitch."""
    if not notes:
        return Note.from_numpy(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8),
                               np.zeros(0, np.int8))
    a = np.array(sorted(notes), dtype=np.int64)
    return Note.from_numpy(a[:, 0].astype(np.int32), a[:, 1].astype(np.int32), a[:, 2].astype(np.int8),
                           a[:, 3].astype(np.int8))


def build_score(parts: list[Part], *, tpq: int, tempo_bpm: float, meter: tuple[int, int],
                tonic: int, mode: str) -> Score:
    """A new score holding ``parts`` with tempo, meter and key events at tick 0."""
    score = Score(tpq)
    score.tempos.append(Tempo(0, qpm=float(tempo_bpm)))
    score.time_signatures.append(TimeSignature(0, int(meter[0]), int(meter[1])))
    sharps, tonality = key_signature(tonic, mode)
    score.key_signatures.append(KeySignature(0, sharps, tonality))
    for part in sorted(parts, key=lambda p: ROLE_ORDER.get(p.role, 9)):
        track = Track(part.name, int(part.program), bool(part.is_drum))
        track.notes = note_list(part.notes)
        score.tracks.append(track)
    return score
