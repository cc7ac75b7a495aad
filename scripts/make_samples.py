"""Write the example MIDI seeds in ``samples/``.

Every note is written out below, so the files are the same on every run::

    python scripts/make_samples.py [OUT_DIR]      # default: samples/ beside scripts/

Files: melody.mid, chord-loop.mid, drum-groove.mid, piano-piece.mid,
melody-and-chords.mid. Tempos are in quarter notes per minute (the MIDI
convention), also for the 6/8 piece.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from musegen.midi import save_midi

TPQ = 480
Q = TPQ  # quarter note
E = TPQ // 2  # eighth note
S = TPQ // 4  # sixteenth note

# MIDI pitches by name, octave 4 = middle C octave
_PCS = {
    "C": 0,
    "C#": 1,
    "Db": 1,
    "D": 2,
    "D#": 3,
    "Eb": 3,
    "E": 4,
    "F": 5,
    "F#": 6,
    "Gb": 6,
    "G": 7,
    "G#": 8,
    "Ab": 8,
    "A": 9,
    "A#": 10,
    "Bb": 10,
    "B": 11,
}


def p(name: str) -> int:
    """MIDI pitch of a name like ``"F#4"`` (C4 = 60)."""
    return 12 * (int(name[-1]) + 1) + _PCS[name[:-1]]


def new_score(*, bpm: float, meter: tuple[int, int], key: tuple[int, int] | None) -> Score:
    """Empty score with tempo, time signature and (sharps, minor) key signature at tick 0."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, qpm=bpm))
    score.time_signatures.append(TimeSignature(0, *meter))
    if key is not None:
        score.key_signatures.append(KeySignature(0, *key))
    return score


def line_track(
    name: str,
    program: int,
    notes: list[tuple[str | None, int]],
    *,
    velocity: int,
    start: int = 0,
    legato: float = 0.92,
    accents: Callable[[int], int] | None = None,
) -> Track:
    """A one-voice track from ``(pitch name or None for a rest, length)`` pairs."""
    track = Track(name=name, program=program)
    tick = start
    for pitch, length in notes:
        if pitch is not None:
            vel = velocity + (accents(tick) if accents else 0)
            track.notes.append(Note(tick, max(1, round(length * legato)), p(pitch), vel))
        tick += length
    return track


def bar_accent(bar: int, strong: tuple[int, ...]) -> Callable[[int], int]:
    """Velocity offset: +8 on the strong beats (ticks within the bar), -4 elsewhere."""
    return lambda tick: 8 if tick % bar in strong else -4


def melody() -> Score:
    """8 bars in G major, 4/4, 100 BPM: a parallel period, half cadence then tonic."""
    score = new_score(bpm=100, meter=(4, 4), key=(1, 0))
    question = [
        ("G4", Q),
        ("B4", Q),
        ("D5", Q),
        ("B4", Q),
        ("C5", Q),
        ("E5", Q),
        ("D5", 2 * Q),
        ("B4", Q + E),
        ("A4", E),
        ("G4", Q),
        ("B4", Q),
        ("A4", 3 * Q),
        (None, Q),
    ]
    answer = [
        ("G4", Q),
        ("B4", Q),
        ("D5", Q),
        ("B4", Q),
        ("C5", Q),
        ("E5", E),
        ("D5", E),
        ("C5", Q),
        ("A4", Q),
        ("B4", Q),
        ("D5", Q),
        ("A4", Q),
        ("F#4", Q),
        ("G4", 3 * Q),
        (None, Q),
    ]
    score.tracks.append(
        line_track(
            "Flute melody",
            73,
            question + answer,
            velocity=84,
            accents=bar_accent(4 * Q, (0, 2 * Q)),
        )
    )
    return score


def chord_loop() -> Score:
    """i-VI-III-VII (Am F C G) in A minor at 85 BPM, 4 bars played twice: piano and bass."""
    score = new_score(bpm=85, meter=(4, 4), key=(0, 1))
    # four-voice chords that double A and E (tonic and fifth), so the loop is
    # heard (and analysed) in A minor rather than in C major, its relative
    voicings = [
        ("E3", "A3", "C4", "E4"),
        ("F3", "A3", "C4", "A4"),
        ("E3", "G3", "C4", "E4"),
        ("D3", "G3", "B3", "D4"),
    ]
    roots = ["A2", "F2", "C3", "G2"]
    pickups = ["E2", "A2", "A2", "B2"]  # the last quarter leads to the next root
    # 3+3+2 eighths: the pop "tresillo" push
    hits = [(0, 3 * E, 78), (3 * E, 3 * E, 64), (6 * E, 2 * E, 70)]
    piano = Track(name="Piano chords", program=0)
    bass = Track(name="Bass", program=33)
    for bar in range(8):
        chord = bar % 4
        at = bar * 4 * Q
        for offset, length, vel in hits:
            for pitch in voicings[chord]:
                piano.notes.append(Note(at + offset, length - 20, p(pitch), vel))
        bass.notes.append(Note(at, 3 * E - 30, p(roots[chord]), 92))
        bass.notes.append(Note(at + 3 * E, 3 * E - 30, p(roots[chord]), 80))
        bass.notes.append(Note(at + 6 * E, 2 * E - 30, p(pickups[chord]), 84))
    score.tracks.extend([piano, bass])
    return score


def drum_groove() -> Score:
    """4 bars of backbeat at 96 BPM: kick, snare, hats with accents, a fill into bar 1."""
    score = new_score(bpm=96, meter=(4, 4), key=None)
    kick, snare, closed, opened, crash = 36, 38, 42, 46, 49
    drums = Track(name="Drums", program=0, is_drum=True)
    hat_velocity = [92, 58, 76, 54, 88, 60, 74, 56]  # per eighth: downbeats lead
    kick_steps = {0: [0, 3 * E, 4 * E], 1: [0, 4 * E, 5 * E], 2: [0, 3 * E, 4 * E], 3: [0, 4 * E]}
    for bar in range(4):
        at = bar * 4 * Q
        for step in range(8):
            if bar == 3 and step == 7:
                drums.notes.append(Note(at + step * E, E, opened, 80))
            elif not (bar == 0 and step == 0):
                vel = hat_velocity[step] - (4 if bar % 2 else 0)
                drums.notes.append(Note(at + step * E, S, closed, vel))
        if bar == 0:
            drums.notes.append(Note(at, Q, crash, 100))
        for tick in kick_steps[bar]:
            drums.notes.append(Note(at + tick, E, kick, 104 if tick == 0 else 92))
        drums.notes.append(Note(at + Q, E, snare, 100))
        drums.notes.append(Note(at + 3 * Q, E, snare, 104))
        if bar in (1, 3):  # ghost note before the backbeat
            drums.notes.append(Note(at + 3 * Q - S, S, snare, 38))
        if bar == 3:  # sixteenth fill at the end
            for i, vel in enumerate((70, 80, 92)):
                drums.notes.append(Note(at + 3 * Q + (i + 1) * S, S, snare, vel))
    score.tracks.append(drums)
    return score


def piano_piece() -> Score:
    """A waltz in D major, 3/4 at 90 BPM, two tracks: right-hand tune, left-hand oom-pah-pah."""
    score = new_score(bpm=90, meter=(3, 4), key=(2, 0))
    tune = [
        ("F#4", Q),
        ("A4", Q),
        ("D5", Q),  # D
        ("D5", 2 * Q),
        ("B4", Q),  # G
        ("A4", Q),
        ("C#5", Q),
        ("E5", Q),  # A7
        ("E5", 3 * Q),  # A (half cadence)
        ("F#4", Q),
        ("A4", Q),
        ("D5", Q),  # D
        ("D5", Q),
        ("B4", Q),
        ("G4", Q),  # G
        ("A4", Q),
        ("E5", Q),
        ("C#5", Q),  # A7
        ("D5", 3 * Q),  # D
    ]
    right = line_track(
        "Right hand", 0, tune, velocity=80, accents=bar_accent(3 * Q, (0,)), legato=0.95
    )
    harmony = [  # (bass, chord tones) per bar
        ("D3", ("F#3", "A3")),
        ("G2", ("B3", "D4")),
        ("A2", ("G3", "C#4")),
        ("A2", ("A3", "C#4")),
        ("D3", ("F#3", "A3")),
        ("G2", ("B3", "D4")),
        ("A2", ("G3", "C#4")),
        ("D3", ("F#3", "A3")),
    ]
    left = Track(name="Left hand", program=0)
    for bar, (bass, chord) in enumerate(harmony):
        at = bar * 3 * Q
        last = bar == len(harmony) - 1
        left.notes.append(Note(at, 3 * Q - 40 if last else Q - 20, p(bass), 72))
        for beat in (1, 2):
            if last and beat == 2:
                continue
            for pitch in chord:
                length = 2 * Q - 40 if last else Q - 80
                left.notes.append(Note(at + beat * Q, length, p(pitch), 54 if beat == 1 else 50))
    score.tracks.extend([right, left])
    return score


def melody_and_chords() -> Score:
    """A lilting 6/8 tune in E minor at 110 BPM (quarter), with block chords on each dotted beat."""
    score = new_score(bpm=110, meter=(6, 8), key=(1, 1))
    dq = 3 * E  # dotted quarter: one felt beat
    tune = [
        ("B4", Q),
        ("G4", E),
        ("A4", Q),
        ("B4", E),  # Em
        ("C5", Q),
        ("B4", E),
        ("A4", dq),  # Am
        ("A4", Q),
        ("B4", E),
        ("A4", Q),
        ("F#4", E),  # D
        ("F#4", Q),
        ("A4", E),
        ("B4", dq),  # B7 (half cadence)
        ("B4", Q),
        ("G4", E),
        ("A4", Q),
        ("B4", E),  # Em
        ("E5", Q),
        ("D5", E),
        ("C5", Q),
        ("B4", E),  # C
        ("A4", Q),
        ("C5", E),
        ("B4", Q),
        ("D#5", E),  # Am | B7
        ("E5", 2 * dq),  # Em
    ]
    lead = line_track(
        "Melody", 73, tune, velocity=82, accents=bar_accent(2 * dq, (0, dq)), legato=0.9
    )
    chords = {
        "Em": ("E2", "E3", "G3", "B3"),
        "Am": ("A2", "E3", "A3", "C4"),
        "D": ("D2", "D3", "F#3", "A3"),
        "B7": ("B1", "B2", "D#3", "F#3", "A3"),
        "C": ("C2", "C3", "E3", "G3"),
    }
    plan = [
        ("Em", "Em"),
        ("Am", "Am"),
        ("D", "D"),
        ("B7", "B7"),
        ("Em", "Em"),
        ("C", "C"),
        ("Am", "B7"),
        ("Em", None),
    ]
    accomp = Track(name="Chords", program=0)
    for bar, halves in enumerate(plan):
        for half, name in enumerate(halves):
            if name is None:
                continue
            at = bar * 2 * dq + half * dq
            held = 2 * dq if halves[1] is None else dq
            for i, pitch in enumerate(chords[name]):
                vel = (70 if half == 0 else 58) + (6 if i == 0 else 0)
                accomp.notes.append(Note(at, held - 30, p(pitch), vel))
    score.tracks.extend([lead, accomp])
    return score


SAMPLES: dict[str, Callable[[], Score]] = {
    "melody.mid": melody,
    "chord-loop.mid": chord_loop,
    "drum-groove.mid": drum_groove,
    "piano-piece.mid": piano_piece,
    "melody-and-chords.mid": melody_and_chords,
}


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "samples"
    for name, build in SAMPLES.items():
        score = build()
        for track in score.tracks:
            track.notes.sort()
        path = save_midi(score, out_dir / name)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
