"""``musegen infill``: bars K-M rewritten, every note outside them kept as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import POP909, SAMPLES, run_cli

PIANO = SAMPLES / "piano-piece.mid"  # 8 bars of 3/4, two hands
needs_pop909 = pytest.mark.skipif(not POP909.is_dir(), reason="POP909 data not available")


def _load(path):
    from musegen.midi.io import load_midi

    return load_midi(path)


def _gap_ticks(path, first: int, last: int) -> tuple[int, int]:
    from musegen.engines.symbolic.infill import gap_of
    from musegen.pipeline.planning import load_seed

    _, a, _ = load_seed(path)
    g = gap_of(a, first, last)
    return g.start, g.end


def _notes(track, keep) -> list[tuple[int, int, int, int]]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes if keep(n.time))


def _check_result(src: Path, out_mid: Path, first: int, last: int, rewritten: set[int] | None = None) -> None:
    """Outside the gap every track is the sketch's note for note; inside, the rewritten tracks have
    notes of their own, none sounding past the gap's end; the other tracks are untouched."""
    before, after = _load(src), _load(out_mid)
    start, end = _gap_ticks(src, first, last)
    assert after.ticks_per_quarter == before.ticks_per_quarter
    assert len(after.tracks) == len(before.tracks)
    outside = lambda t: not start <= t < end
    inside = lambda t: start <= t < end
    gap_notes = 0
    for i, (b, a) in enumerate(zip(before.tracks, after.tracks)):
        assert (a.program, a.is_drum) == (b.program, b.is_drum), f"track {i} changed instrument"
        assert _notes(a, outside) == _notes(b, outside), f"track {i} changed outside bars {first}-{last}"
        if rewritten is not None and i not in rewritten:
            assert _notes(a, inside) == _notes(b, inside), f"track {i} was not to be rewritten"
            continue
        for n in a.notes:
            if inside(n.time):
                gap_notes += 1
                assert n.time + n.duration <= end, f"a gap note of track {i} sounds past the gap's end"
    assert gap_notes > 0, "the gap is empty"


def test_infill_keeps_outside_bars_note_for_note(tmp_path):
    from musegen.pipeline import infill

    (r,) = infill(PIANO, bars="3-5", seed=4, out_dir=tmp_path, post=[])
    _check_result(PIANO, r.mid, 3, 5)
    info = r.sidecar["engine"]["info"]["infill"]
    assert info["bars"] == [3, 5] and r.sidecar["parameters"]["infill"] == [3, 5]
    assert len(info["candidates"]) == 6  # the default
    assert info["chosen"] == int(np.argmax([c["score"] for c in info["candidates"]]))
    # the rewrite is the model's, not the sketch's bars put back
    start, end = _gap_ticks(PIANO, 3, 5)
    assert any(_notes(a, lambda t: start <= t < end) != _notes(b, lambda t: start <= t < end)
               for a, b in zip(_load(r.mid).tracks, _load(PIANO).tracks))


def test_infill_only_the_named_parts(tmp_path):
    from musegen.pipeline import infill

    # the left hand is read as accompaniment ('harmony'): the right hand must stay as it is, gap included
    (r,) = infill(PIANO, bars="2-3", parts="harmony", seed=2, out_dir=tmp_path, post=[],
                  engine_options={"candidates": 2})
    _check_result(PIANO, r.mid, 2, 3, rewritten={1})
    assert r.sidecar["engine"]["info"]["infill"]["tracks"] == [1]


def test_gap_at_the_start_and_at_the_end(tmp_path):
    from musegen.pipeline import infill

    for gap, (k, m) in (("1-2", (1, 2)), ("7-8", (7, 8))):
        (r,) = infill(PIANO, bars=gap, seed=1, out_dir=tmp_path, post=[], engine_options={"candidates": 2})
        _check_result(PIANO, r.mid, k, m)


@pytest.mark.parametrize("bars", ["9-12", "5-3", "0-2", "three", "2-"])
def test_bad_bars_named(bars):
    from musegen.errors import ParameterError
    from musegen.pipeline.infilling import parse_gap

    with pytest.raises(ParameterError, match="--bars") as exc:
        parse_gap(bars, 8)
    assert repr(bars) in str(exc.value)


def test_cli_refuses_bad_bars_parts_and_engine(tmp_path):
    out = tmp_path / "out"
    for args, named in ((["--bars", "7-9"], "'7-9'"), (["--bars", "2-3", "--parts", "flute"], "'flute'"),
                        (["--bars", "2-3", "--engine", "procedural"], "'procedural'")):
        r = run_cli("infill", PIANO, *args, "-o", out)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and named in lines[0], r.stderr
        assert not out.exists() or not any(out.iterdir())


def _in_four_four(src: Path, dst: Path) -> Path:
    """A POP909 song as the model was trained on it: its files say 4/4 and then 1/4 at tick 0;
    the tokenizer read the first, a sequencer (and musegen's analysis) reads the last."""
    from symusic import Score, TimeSignature

    s = Score(str(src))
    s.time_signatures.clear()
    s.time_signatures.append(TimeSignature(0, 4, 4))
    s.dump_midi(str(dst))
    return dst


@needs_pop909
def test_cli_infills_a_pop909_song(tmp_path):
    from musegen.audio.io import read_audio

    song = _in_four_four(POP909 / "026" / "026.mid", tmp_path / "026.mid")
    r = run_cli("infill", song, "--bars", "9-12", "-o", tmp_path, "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)["results"]
    mid = tmp_path / Path(res["mid"]).name
    _check_result(song, mid, 9, 12)
    side = json.loads((tmp_path / Path(res["json"]).name).read_text())
    assert side["command"] == "infill" and side["engine"]["info"]["infill"]["bars"] == [9, 12]
    y, _ = read_audio(tmp_path / Path(res["wav"]).name)
    assert float(np.abs(y).max()) > 0.01
