"""Notes sound at the pitch the MIDI file names, with the default (symusic) renderer.

symusic's synthesizer ignores a zone's overriding root key, and the bundled
TimGM6mb sets one on every piano zone: before the fix a piano A4 sounded as
G#6 and C4 as G#5, so every piano part played in another key.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.signal import find_peaks

from musegen.render.synth import default_soundfont, render_score

SR = 44100
PROGRAMS = {0: "piano", 4: "electric piano", 16: "organ", 24: "nylon guitar", 33: "finger bass",
            40: "violin", 48: "strings", 56: "trumpet", 73: "flute", 80: "square lead"}


def _note(program: int, pitch: int):
    from symusic import Note, Score, Track

    score = Score(480)
    track = Track(program=program)
    track.notes.append(Note(0, 1920, pitch, 100))
    score.tracks.append(track)
    return score


def _partials(y: np.ndarray, f0: float) -> np.ndarray:
    """Frequencies of the strongest spectral peaks of a held note, at least f0 / 3 apart
    (so a tremolo's or chorus's sidebands count once)."""
    mono = y.mean(axis=0)[int(0.05 * SR):int(1.5 * SR)]
    spec = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    freqs = np.fft.rfftfreq(mono.size, 1.0 / SR)
    peaks, _ = find_peaks(spec, height=spec.max() * 0.05, distance=max(10, int(f0 / 3 / freqs[1])))
    return freqs[sorted(peaks, key=lambda p: -spec[p])[:8]]


def _off_series_cents(partials: np.ndarray, f0: float) -> float:
    """The median distance in cents of the partials from the harmonic series on f0 / 2.

    Half the fundamental lets a font voice an instrument an octave down (GM
    basses often are); a wrong pitch puts partials between the harmonics.
    """
    base = f0 / 2.0
    low = partials[(partials > 20.0) & (partials < 16 * base)]
    k = np.maximum(1, np.rint(low / base))
    return float(np.median(np.abs(1200.0 * np.log2(low / (k * base))))) if low.size else 0.0


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_rendered_notes_sound_at_their_midi_pitch(program):
    for pitch in (48, 60, 69, 76):
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        partials = _partials(render_score(_note(program, pitch), sample_rate=SR), f0)
        cents = _off_series_cents(partials, f0)
        assert cents < 25.0, f"{PROGRAMS[program]} note {pitch}: partials {np.round(np.sort(partials), 1)} " \
                             f"lie {cents:.0f} cents off the harmonics of {f0:.1f} Hz"


def test_root_keys_are_baked_once_and_the_result_needs_no_more():
    from musegen.render.sf2root import bake_root_keys

    original = default_soundfont().read_bytes()
    baked = bake_root_keys(original)
    assert baked is not None and baked[:4] == b"RIFF" and baked[8:12] == b"sfbk"
    assert len(baked) > len(original)  # headers added, sample data shared
    assert bake_root_keys(baked) is None  # every zone now plays from its own header's root


def test_the_repaired_font_passes_the_soundfont_check(tmp_path):
    from musegen.render.sf2check import check_soundfont
    from musegen.render.sf2root import bake_root_keys

    path = tmp_path / "baked.sf2"
    path.write_bytes(bake_root_keys(default_soundfont().read_bytes()))
    check_soundfont(path)  # raises on a broken layout


def test_the_repaired_font_is_made_once_in_musegens_cache(tmp_path, monkeypatch):
    from musegen.render.sf2root import font_for_symusic

    monkeypatch.setenv("MUSEGEN_CACHE_DIR", str(tmp_path))
    first = font_for_symusic(str(default_soundfont()))
    assert first.startswith(str(tmp_path / "soundfonts")) and first.endswith(".sf2")
    stamp = os.stat(first).st_mtime_ns
    assert font_for_symusic(str(default_soundfont())) == first
    assert os.stat(first).st_mtime_ns == stamp  # reused, not rewritten
    assert list((tmp_path / "soundfonts").glob("*.part")) == []


def test_a_font_that_needs_no_repair_is_used_as_it_is(tmp_path, monkeypatch):
    from musegen.render.sf2root import bake_root_keys, font_for_symusic

    monkeypatch.setenv("MUSEGEN_CACHE_DIR", str(tmp_path / "cache"))
    fine = tmp_path / "fine.sf2"
    fine.write_bytes(bake_root_keys(default_soundfont().read_bytes()))
    assert font_for_symusic(str(fine)) == str(fine)
    assert font_for_symusic(str(fine)) == str(fine)
