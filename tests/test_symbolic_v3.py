"""A version-3 model at work (issue 15): controls in the prompt, drums, infilling, accompaniment.

A tiny version-3 model is trained here on the sample sketches (the drum groove
among them, so it learns drums) and saved as a checkpoint; the engine then
runs it through the user's commands.  What is checked is what a user would
check: the sketch's notes stay, the drums are on channel 10 with GM drum notes,
the bars around an infilled gap are untouched, the melody under an
accompaniment is kept note for note.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import SAMPLES, run_cli  # noqa: E402
from symusic import Score  # noqa: E402


@pytest.fixture(scope="module")
def v3_model(tmp_path_factory) -> Path:
    from musegen.engines.symbolic.data import build_corpus
    from musegen.engines.symbolic.layout import Layout
    from musegen.engines.symbolic.model import ModelConfig
    from musegen.engines.symbolic.tokens import build_tokenizer
    from musegen.engines.symbolic.train import TrainConfig, train

    tok = build_tokenizer(version=2)
    items = [(p.stem, str(p), "drums" if "drum" in p.stem else "pop") for p in sorted(SAMPLES.glob("*.mid"))]
    corpus = build_corpus(tok, items, log=None)
    layout = Layout(tok)
    out = tmp_path_factory.mktemp("v3") / "model"
    cfg = ModelConfig(vocab_size=layout.vocab_size, n_layer=1, n_head=2, d_model=32, context=256, dropout=0.0)
    train(tok, corpus, corpus, out, model_cfg=cfg, layout=layout, meta={"tokenizer_version": 3},
          train_cfg=TrainConfig(steps=30, batch=4, lr=3e-3, warmup=3, eval_every=15, eval_batches=1))
    config = json.loads((out / "config.json").read_text())
    assert config["drums"] is True and config["extra_tokens"]
    return out


def _notes(track):
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def test_the_engine_loads_a_v3_checkpoint_and_refuses_unknown_extra_tokens(v3_model, tmp_path):
    import shutil

    from musegen.engines.symbolic.checkpoint import load_runtime
    from musegen.errors import EngineError

    model, tok, config = load_runtime(v3_model)
    assert model.cfg.vocab_size == len(tok) + len(config["extra_tokens"])
    bad = tmp_path / "bad"
    shutil.copytree(v3_model, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["extra_tokens"] = cfg["extra_tokens"][:-1] + ["NOPE"]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EngineError, match="extra_tokens"):
        load_runtime(bad)


def test_generate_drums_come_from_the_model_on_channel_10(v3_model, tmp_path):
    r = run_cli("generate", "--preset", "techno", "--engine", "symbolic", "--bars", "4", "--seed", "3",
                "--option", f"model={v3_model}", "-o", str(tmp_path), "--no-post")
    assert r.returncode == 0, r.stderr
    mid = next(tmp_path.glob("*.mid"))
    text = next(tmp_path.glob("*.json")).read_text()
    assert '"model_drums"' in text
    drums = [t for t in Score(str(mid)).tracks if t.is_drum]
    assert len(drums) == 1 and len(drums[0].notes) > 0
    assert all(27 <= n.pitch <= 87 for n in drums[0].notes)  # GM percussion keys
    # channel 10 in the file itself: every drum note-on is on MIDI channel index 9
    import mido

    chans = {m.channel for t in mido.MidiFile(str(mid)).tracks for m in t if m.type == "note_on"}
    assert 9 in chans


def test_drummer_procedural_keeps_the_procedural_drummer(v3_model, tmp_path):
    r = run_cli("generate", "--preset", "techno", "--engine", "symbolic", "--bars", "4", "--seed", "3",
                "--option", f"model={v3_model}", "--option", "drummer=procedural", "-o", str(tmp_path),
                "--no-post")
    assert r.returncode == 0, r.stderr
    text = next(tmp_path.glob("*.json")).read_text()
    assert '"model_drums"' not in text and '"drums"' in text


def test_extend_keeps_the_sketch_and_continues_its_drums_with_the_model(v3_model, tmp_path):
    sketch = SAMPLES / "drum-groove.mid"
    r = run_cli("extend", str(sketch), "--bars", "4", "--seed", "1", "--option", f"model={v3_model}",
                "-o", str(tmp_path), "--no-post")
    assert r.returncode == 0, r.stderr
    src, out = Score(str(sketch)), Score(str(next(tmp_path.glob("*.mid"))))
    end = max(n.end for t in src.tracks for n in t.notes)
    src_drums = [t for t in src.tracks if t.is_drum][0]
    out_drums = [t for t in out.tracks if t.is_drum][0]
    scale = out.ticks_per_quarter / src.ticks_per_quarter
    kept = sorted((round(n.time * scale), n.pitch) for n in src_drums.notes)
    got = sorted((n.time, n.pitch) for n in out_drums.notes if n.time < end * scale)
    assert got == kept
    assert any(n.time >= end * scale for n in out_drums.notes)
    assert '"model_drums"' in next(tmp_path.glob("*.json")).read_text()


def test_infill_keeps_the_bars_outside_the_gap(v3_model, tmp_path):
    sketch = SAMPLES / "melody-and-chords.mid"
    r = run_cli("infill", str(sketch), "--bars", "2-3", "--seed", "2", "--option", f"model={v3_model}",
                "-o", str(tmp_path), "--no-post")
    assert r.returncode == 0, r.stderr
    side = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert "infilling layout" in json.dumps(side)
    src, out = Score(str(sketch)), Score(str(next(tmp_path.glob("*.mid"))))
    ts = src.time_signatures[0]
    bar = src.ticks_per_quarter * 4 * ts.numerator // ts.denominator
    lo, hi = bar, 3 * bar
    for a, b in zip(src.tracks, out.tracks):
        outside = [x for x in _notes(a) if not lo <= x[0] < hi]
        assert [x for x in _notes(b) if not lo <= x[0] < hi] == outside
        assert all(n.time + n.duration <= hi for n in b.notes if lo <= n.time < hi)  # none hangs over


def test_accompany_keeps_the_melody_and_the_model_writes_the_parts(v3_model, tmp_path):
    sketch = SAMPLES / "melody.mid"
    r = run_cli("accompany", str(sketch), "--parts", "bass,piano,drums", "--seed", "4",
                "--option", f"model={v3_model}", "--option", "accompany_parts=model", "-o", str(tmp_path),
                "--no-post")
    assert r.returncode == 0, r.stderr
    src, out = Score(str(sketch)), Score(str(next(tmp_path.glob("*.mid"))))
    scale = out.ticks_per_quarter / src.ticks_per_quarter
    mel = [t for t in src.tracks if t.notes][0]
    assert sorted((round(n.time * scale), n.pitch) for n in mel.notes) == \
        sorted((n.time, n.pitch) for n in out.tracks[0].notes)
    names = {t.name: t for t in out.tracks[1:]}
    assert {"bass", "harmony", "drums"} <= set(names)
    side = json.dumps(json.loads(next(tmp_path.glob("*.json")).read_text()))
    assert '"model_drums"' in side and '"32":' in side  # the bass came from the model
    end = max(n.end for n in out.tracks[0].notes)
    bar = out.ticks_per_quarter * 4
    assert all(n.time < end + bar for n in names["bass"].notes)  # under the melody's bars


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_v3_model_fine_tunes_into_a_v3_model(v3_model, tmp_path, method):
    """Style learning keeps the base's layout: the result loads and still has the controls."""
    from musegen.engines.symbolic.checkpoint import load_runtime
    from musegen.engines.symbolic.finetune import finetune

    files = sorted(SAMPLES.glob("*.mid"))
    out = tmp_path / "style"
    summary = finetune(files, out, model_style=None, base=v3_model, method=method, steps=6, batch=2, patience=0)
    assert summary["steps"] == 6
    model, tok, config = load_runtime(out)
    assert config["extra_tokens"] == json.loads((v3_model / "config.json").read_text())["extra_tokens"]
    assert model.cfg.vocab_size == len(tok) + len(config["extra_tokens"])


def test_a_checkpoint_s_chosen_defaults_drive_extend(v3_model, tmp_path):
    """The continuation settings chosen on the validation split travel in the checkpoint's config."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(v3_model, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["defaults"] = {"candidates": 2, "reprise": 1.5}
    (model / "config.json").write_text(json.dumps(cfg))
    r = run_cli("extend", str(SAMPLES / "melody.mid"), "--bars", "2", "--seed", "1", "--option", f"model={model}",
                "-o", str(tmp_path / "out"), "--no-post")
    assert r.returncode == 0, r.stderr
    text = next((tmp_path / "out").glob("*.json")).read_text()
    assert '"candidates": 2' in text and '"reprise": 1.5' in text
    # an option still wins over the model's default
    r = run_cli("extend", str(SAMPLES / "melody.mid"), "--bars", "2", "--seed", "1", "--option", f"model={model}",
                "--option", "reprise=0", "-o", str(tmp_path / "out2"), "--no-post")
    assert r.returncode == 0, r.stderr
    assert '"reprise": 0.0' in next((tmp_path / "out2").glob("*.json")).read_text()


class _Stuck:
    """A model that always wants one more kick drum at the same onset (a degenerate model)."""

    def __init__(self, tok, vocab_size):
        from musegen.engines.symbolic.config import ModelConfig

        self.cfg = ModelConfig(vocab_size=vocab_size, n_layer=1, n_head=1, d_model=2, context=4096)
        self.logits = np.full(vocab_size, -5.0, np.float32)
        v = tok.vocab
        for name, value in (("Program_-1", 9.0), ("PitchDrum_36", 9.0), ("Velocity_95", 9.0),
                            ("Duration_0.1.8", 9.0), ("Position_0", 3.0), ("Bar_None", 1.0)):
            self.logits[v[name]] = value

    def new_cache(self, batch):
        return _Cache(batch)

    def step(self, idx, cache, *, every=False):
        cache.rows = idx.shape[0]
        out = np.broadcast_to(self.logits, (idx.shape[0], idx.shape[1] if every else 1, len(self.logits)))
        return out.copy() if every else out[:, 0].copy()


class _Cache:
    def __init__(self, rows):
        self.rows, self.length = rows, 0

    def keep(self, rows):
        self.rows = len(rows)


def test_a_model_stuck_on_one_onset_cannot_pile_notes_up():
    """No part plays one pitch twice at an onset, and an onset holds at most MAX_ONSET_NOTES notes."""
    from musegen.engines.symbolic import runtime
    from musegen.engines.symbolic.sampler import MAX_ONSET_NOTES, ConstrainedSampler, SampleSettings
    from musegen.engines.symbolic.tokens import build_tokenizer, decode

    tok = build_tokenizer(version=2)
    model = _Stuck(tok, len(tok))
    from musegen.engines.symbolic.sampler import Grammar

    # the real __init__ converts a torch model to a NumpyLM; this stand-in is neither
    sampler = ConstrainedSampler.__new__(ConstrainedSampler)
    sampler.model, sampler.tok, sampler.g, sampler.layout = model, tok, Grammar(tok, len(tok)), None
    sampler.last_stats = {}
    assert not isinstance(model, runtime.NumpyLM)
    v = tok.vocab
    prompt = [v["BOS_None"], v["Bar_None"], v["TimeSig_4/4"], v["Position_0"]]
    rows = sampler.sample([prompt, prompt], bars=2, meter=(4, 4), settings=SampleSettings(programs=(-1,)),
                          generator=np.random.default_rng(0))
    for new in rows:
        score = decode(tok, prompt[1:] + new)
        onsets: dict[int, list[int]] = {}
        for trk in score.tracks:
            for n in trk.notes:
                onsets.setdefault(n.time, []).append(n.pitch)
        assert onsets, "the rows wrote no notes"
        for pitches in onsets.values():
            assert len(pitches) == len(set(pitches)) and len(pitches) <= MAX_ONSET_NOTES
        assert sum(1 for t in new if t == v["Bar_None"]) >= 1  # it moved on to the next bar
