"""Tokenizer version 3 (engines/symbolic/layout.py): controls, bar infilling, part infilling.

The layouts are checked the way a user of the model would see them: by decoding
the token sequences back to notes with the tokenizer and comparing them with the
notes of the real MIDI files in ``samples/``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLES

from musegen.engines.symbolic.layout import (
    DENSITY_EDGES,
    POLYPHONY_EDGES,
    Layout,
    density_bucket,
    extra_tokens,
    polyphony_bucket,
)
from musegen.engines.symbolic.tokens import (
    build_tokenizer,
    canonicalize,
    decode,
    encode,
)

SAMPLE_FILES = sorted(SAMPLES.glob("*.mid"))


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(version=2)


@pytest.fixture(scope="module")
def layout(tok):
    return Layout(tok)


@pytest.fixture(scope="module")
def bodies(tok):
    """``{sample name: REMI ids}`` of every sample, canonical programs, as the corpus holds them."""
    from symusic import Score

    out = {}
    for path in SAMPLE_FILES:
        canon, _ = canonicalize(Score(str(path)))
        out[path.name] = np.asarray(encode(tok, canon), np.int64)
    return out


def _program(track) -> int:
    return -1 if track.is_drum else int(track.program)


def _notes(tok, ids, *, shift: int = 0) -> Counter:
    """Multiset of ``(time, pitch, duration, program)`` decoded from REMI ids (layout tokens left out)."""
    ids = [int(i) for i in ids if int(i) < len(tok)]
    if not any(tok[i].startswith("Program_") for i in ids):
        return Counter()
    score = decode(tok, ids).to("tick")
    return Counter((n.time + shift, n.pitch, n.duration, _program(t)) for t in score.tracks for n in t.notes)


def _names(tok, layout, ids) -> list[str]:
    inv = {i: name for name, i in layout.extra.items()}
    return [inv[int(i)] if int(i) >= len(tok) else tok[int(i)] for i in ids]


def _count(tok, ids, prefix: str) -> int:
    return sum(tok[int(i)].startswith(prefix) for i in ids)


def _bar_ticks(score) -> int:
    ts = score.time_signatures[0]
    return score.ticks_per_quarter * 4 * ts.numerator // ts.denominator


def _part_cases():
    from symusic import Score

    cases = []
    for path in SAMPLE_FILES:
        canon, _ = canonicalize(Score(str(path)))
        for prog in sorted({_program(t) for t in canon.tracks if len(t.notes)}):
            cases.append((path.name, prog))
    return cases


# -- 1. split_part --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "program"), _part_cases())
def test_split_part_divides_the_notes_between_rest_and_part(tok, layout, bodies, name, program):
    body = bodies[name]
    rest, part = layout.split_part(body, program)
    whole = _notes(tok, body)
    got_rest, got_part = _notes(tok, rest), _notes(tok, part)
    # together exactly the piece's notes, each once, at its own time
    assert got_rest + got_part == whole
    assert got_part and {p for *_, p in got_part} == {program}
    assert program not in {p for *_, p in got_rest}
    # both keep every bar line (and meter), so the part lines up with the rest bar for bar
    for seq in (rest, part):
        assert _count(tok, seq, "Bar_") == _count(tok, body, "Bar_")
        assert _count(tok, seq, "TimeSig_") == _count(tok, body, "TimeSig_")
    # the part has one Position per onset of its own
    assert _count(tok, part, "Position_") == len({t for t, *_ in got_part})
    # no Position in the rest is left without a note or a tempo after it
    names = [tok[int(i)] for i in rest] + ["Bar_None"]
    for k, n in enumerate(names[:-1]):
        if n.startswith("Position_"):
            assert names[k + 1].startswith(("Program_", "Tempo_")), (k, names[k:k + 3])


def test_split_part_of_a_window_starting_mid_piece(tok, layout, bodies):
    """A training window starts at a bar line inside the piece (no Tempo token at its start)."""
    body = bodies["chord-loop.mid"]
    starts = layout.bar_starts(body)
    window = body[starts[2]:starts[6]]
    for program in (0, 32):
        rest, part = layout.split_part(window, program)
        assert _notes(tok, rest) + _notes(tok, part) == _notes(tok, window)
        assert {p for *_, p in _notes(tok, part)} == {program}
        assert _count(tok, rest, "Bar_") == _count(tok, part, "Bar_") == 4


# -- 2. bar_infill --------------------------------------------------------------------------------


def _infill_cases():
    cases = []
    for path in SAMPLE_FILES:
        cases += [(path.name, 0, 0), (path.name, 1, 2), (path.name, -1, -1), (path.name, 0, -1)]
    return cases


@pytest.mark.parametrize(("name", "first", "last"), _infill_cases())
def test_bar_infill_cuts_out_exactly_the_gap_bars(tok, layout, bodies, name, first, last):
    body = bodies[name]
    n_bars = len(layout.bar_starts(body))
    first, last = first % n_bars, last % n_bars
    context, gap = layout.bar_infill(body, first, last)
    assert len(context) + len(gap) == len(body) + 3
    x = layout.extra
    # HOLE where the gap was, START closing the context, END closing the gap; nowhere else
    a = int(layout.bar_starts(body)[first])
    assert context[a] == x["INFILL_HOLE"] and context[-1] == x["INFILL_START"] and gap[-1] == x["INFILL_END"]
    assert (context >= len(tok)).sum() == 2 and (gap >= len(tok)).sum() == 1
    assert tok[int(gap[0])] == "Bar_None"
    # the gap decodes to bars first..last (miditok starts them at 0), the context to the others
    full = decode(tok, body.tolist()).to("tick")
    bar = _bar_ticks(full)
    want_gap, want_context = Counter(), Counter()
    for t in full.tracks:
        for n in t.notes:
            b = n.time // bar
            key = (n.pitch, n.duration, _program(t))
            if first <= b <= last:
                want_gap[(n.time - first * bar, *key)] += 1
            else:  # the bars after the gap close up behind the hole
                want_context[(n.time - (last - first + 1) * bar * (b > last), *key)] += 1
    assert _notes(tok, gap) == want_gap
    assert _notes(tok, context) == want_context
    assert _count(tok, gap[:-1], "Bar_") == last - first + 1
    assert _count(tok, context[:-1][context[:-1] < len(tok)], "Bar_") == n_bars - (last - first + 1)


# -- 3. controls ------------------------------------------------------------------------------------


def _hand_score(tpq=480, *, empty_middle_bar=False):
    """4/4: per bar a piano triad on beats 1 and 3, a melody note on 2 and 4, a kick on beat 1.

    9 notes per bar on 4 onsets (9/4 notes per onset); parts drums, piano (0), melody (72).
    With ``empty_middle_bar`` a silent bar sits between the two bars of music.
    """
    from symusic import Note, Score, Tempo, TimeSignature, Track

    s = Score(tpq)
    s.tempos.append(Tempo(0, 120.0))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    piano, melody = Track(name="piano", program=0), Track(name="melody", program=72)
    drums = Track(name="drums", program=0, is_drum=True)
    for b in (0, 2) if empty_middle_bar else (0, 1):
        t0 = b * 4 * tpq
        for beat in (0, 2):
            for pitch in (60, 64, 67):
                piano.notes.append(Note(t0 + beat * tpq, tpq, pitch, 80))
        for beat in (1, 3):
            melody.notes.append(Note(t0 + beat * tpq, tpq // 2, 76, 90))
        drums.notes.append(Note(t0, tpq // 4, 36, 100))
    s.tracks.extend([piano, melody, drums])
    return s


def test_stats_and_controls_of_a_known_score(tok, layout):
    body = np.asarray(encode(tok, _hand_score()), np.int64)
    density, polyphony, parts = layout.stats(body)
    assert density == pytest.approx(9.0)
    assert polyphony == pytest.approx(9 / 4)
    assert parts == [-1, 0, 72]
    # 9 notes per bar is the first value of bucket 2; 2.25 notes per onset lies in [1.7, 2.5)
    assert layout.controls_of(body) == (2, 2, [-1, 0, 72])
    ids = layout.controls(2, 2, [72, 0, -1], add=72)
    assert _names(tok, layout, ids) == ["DENS_2", "POLY_2", "PART_-1", "PART_0", "PART_72", "ADD_72"]
    assert _names(tok, layout, layout.controls(None, 1, None)) == ["POLY_1"]


def test_an_empty_bar_counts_toward_the_density(tok, layout):
    body = np.asarray(encode(tok, _hand_score(empty_middle_bar=True)), np.int64)
    assert _count(tok, body, "Bar_") == 3
    density, polyphony, parts = layout.stats(body)
    assert density == pytest.approx(18 / 3) and polyphony == pytest.approx(9 / 4) and parts == [-1, 0, 72]
    assert layout.controls_of(body) == (1, 2, [-1, 0, 72])


def test_a_body_without_notes_has_no_controls(tok, layout):
    bars = np.asarray([tok.vocab["Bar_None"], tok.vocab["TimeSig_4/4"]] * 2, np.int64)
    assert layout.stats(bars) == (0.0, 0.0, [])
    assert layout.controls_of(bars) == (None, None, [])
    assert layout.controls(None, None, None) == []


def test_bucket_edges():
    assert [density_bucket(v) for v in (0, 5.99, 6.0, 8.99, 9.0, 44.9, 45.0, 1000)] == [0, 0, 1, 1, 2, 6, 7, 7]
    assert [polyphony_bucket(v) for v in (0, 1.0, 1.19, 1.2, 1.7, 2.49, 2.5, 9)] == [0, 0, 0, 1, 2, 2, 3, 3]
    # every bucket a value can fall in has its token
    names = extra_tokens()
    assert {f"DENS_{k}" for k in range(len(DENSITY_EDGES) + 1)} <= set(names)
    assert {f"POLY_{k}" for k in range(len(POLYPHONY_EDGES) + 1)} <= set(names)
    assert len(names) == len(set(names))


def test_extra_tokens_come_after_the_remi_vocabulary(tok, layout):
    assert layout.base == len(tok)
    assert layout.vocab_size == len(tok) + len(extra_tokens())
    assert [layout.extra[n] for n in extra_tokens()] == list(range(len(tok), layout.vocab_size))


# -- 4. training windows ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tok):
    from musegen.engines.symbolic.data import build_corpus

    items = [(p.stem, str(p), "pop") for p in SAMPLE_FILES]
    c = build_corpus(tok, items, log=None)
    assert len(c) == len(SAMPLE_FILES)
    return c


CONTEXT = 256
CONTROL_KINDS = ("DENS_", "POLY_", "PART_", "ADD_")


def _is_control(name: str) -> bool:
    return name.startswith(CONTROL_KINDS) and name != "PART_START"


def _check_window(tok, layout, w) -> tuple[str, list[str]]:
    """Structure every window shares; returns its layout (plain, bar, part) and its control names."""
    from musegen.engines.symbolic.tokens import model_styles

    assert w.shape == (CONTEXT + 1,) and w.dtype == np.int64
    pad = np.flatnonzero(w == -100)
    if len(pad):  # padding only at the end
        assert (w[pad[0]:] == -100).all()
        w = w[:pad[0]]
    assert (w >= 0).all() and (w < layout.vocab_size).all()
    names = _names(tok, layout, w)
    assert names[0] == "BOS_None"
    assert names[1] in {f"STYLE_{s}" for s in model_styles(tok)}
    assert names[2].startswith("KEY_")
    k = 3
    while _is_control(names[k]):
        k += 1
    controls = names[3:k]
    order = [next(i for i, c in enumerate(CONTROL_KINDS) if n.startswith(c)) for n in controls]
    assert order == sorted(order) and order.count(0) <= 1 and order.count(1) <= 1 and order.count(3) <= 1
    assert names[k] in ("Bar_None", "INFILL_HOLE")
    music = names[k:]
    assert not any(_is_control(n) for n in music)
    adds = [n for n in controls if n.startswith("ADD_")]
    if "INFILL_START" in music:
        assert [n for n in music if n.startswith("INFILL_")] == ["INFILL_HOLE", "INFILL_START", "INFILL_END"]
        assert "PART_START" not in music and not adds
        assert music[music.index("INFILL_START") + 1] == "Bar_None"
        return "bar", controls
    if "PART_START" in music:
        assert music.count("PART_START") == 1 and len(adds) == 1
        assert not any(n.startswith("INFILL_") for n in music)
        program = f"Program_{adds[0][len('ADD_'):]}"
        cut = music.index("PART_START")
        before, after = music[:cut], music[cut + 1:]
        assert program not in before
        assert {n for n in after if n.startswith("Program_")} == {program}
        assert before.count("Bar_None") >= after.count("Bar_None") > 0
        return "part", controls
    assert not adds and not any(n.startswith(("INFILL_", "PART_START")) for n in music)
    return "plain", controls


def test_windows_mix_plain_bar_infill_and_part_infill(tok, layout, corpus):
    from musegen.engines.symbolic.data import WindowSampler

    sampler = WindowSampler(tok, corpus, CONTEXT, seed=7, layout=layout)
    kinds = Counter(_check_window(tok, layout, w)[0] for w in sampler.batch(200))
    # p_infill = p_part = 0.25: each layout is common
    assert kinds["plain"] >= 40 and kinds["bar"] >= 25 and kinds["part"] >= 25, kinds


def test_plain_layout_windows_have_every_control_and_no_infill(tok, layout, corpus):
    from musegen.engines.symbolic.data import WindowSampler

    sampler = WindowSampler(tok, corpus, CONTEXT, seed=3, transpose=False, layout=layout.plain())
    for w in sampler.batch(100):
        kind, controls = _check_window(tok, layout, w)
        assert kind == "plain"
        music = w[w >= 0][3 + len(controls):]
        body_progs = sorted({int(tok[int(i)].split("_")[1]) for i in music if tok[int(i)].startswith("Program_")})
        if body_progs:
            assert controls[0].startswith("DENS_") and controls[1].startswith("POLY_")
            assert [c for c in controls if c.startswith("PART_")] == [f"PART_{p}" for p in body_progs]
        # the controls describe the window's own music
        density, polyphony, parts = layout.controls_of(music)
        assert controls == _names(tok, layout, layout.controls(density, polyphony, parts or None))


# -- 5. training ------------------------------------------------------------------------------------


def test_tiny_training_run_with_the_layout_learns_and_saves_the_extra_tokens(tok, layout, corpus, tmp_path):
    torch = pytest.importorskip("torch")
    from musegen.engines.symbolic.checkpoint import load_checkpoint, load_runtime
    from musegen.engines.symbolic.data import WindowSampler
    from musegen.engines.symbolic.model import ModelConfig
    from musegen.engines.symbolic.train import TrainConfig, train

    mc = ModelConfig(vocab_size=layout.vocab_size, n_layer=1, n_head=2, d_model=64, context=128, dropout=0.0)
    out = train(tok, corpus, corpus, tmp_path, model_cfg=mc, layout=layout,
                train_cfg=TrainConfig(steps=41, batch=8, lr=3e-3, warmup=5, eval_every=40, eval_batches=2, seed=1))
    losses = [r["train_loss"] for r in out["history"] if "train_loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0] - 1.0, losses
    config = json.loads((Path(tmp_path) / "config.json").read_text())
    assert config["extra_tokens"] == list(layout.extra) == extra_tokens()
    assert config["model"]["vocab_size"] == len(tok) + len(extra_tokens())
    lm, tokenizer, _ = load_runtime(tmp_path)  # the folder rebuilds itself with the larger vocabulary
    assert len(tokenizer) == len(tok) and lm.cfg.vocab_size == layout.vocab_size
    # it learned from the layout's windows: after BOS STYLE KEY it expects the controls
    # (about 0.2 of its probability after these steps; trained on plain REMI it puts about 0.03 there)
    model, _, _ = load_checkpoint(tmp_path)
    heads = WindowSampler(tok, corpus, 128, seed=5, transpose=False, layout=layout.plain()).batch(16)[:, :3]
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(heads))[:, -1].float(), -1)
    controls = [i for i, n in enumerate(_names(tok, layout, range(layout.vocab_size))) if _is_control(n)]
    assert float(probs[:, controls].sum(-1).mean()) > 0.1
