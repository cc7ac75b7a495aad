"""The embedded symbolic model: tokenizer, model, sampler, checkpoints, engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from symusic import Score  # noqa: E402

from conftest import SAMPLES, make_sketch  # noqa: E402
from musegen.engines.symbolic.checkpoint import (  # noqa: E402
    load_checkpoint,
    load_runtime,
    save_checkpoint,
    shipped_checkpoint,
)
from musegen.engines.symbolic.data import TokenCorpus, WindowSampler, build_corpus  # noqa: E402
from musegen.engines.symbolic.model import ModelConfig, MusicTransformer  # noqa: E402
from musegen.engines.symbolic.sampler import ConstrainedSampler, SampleSettings  # noqa: E402
from musegen.engines.symbolic.tokens import build_tokenizer, canonicalize, decode, encode  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tok):
    torch.manual_seed(0)
    m = MusicTransformer(ModelConfig(vocab_size=len(tok), n_layer=1, n_head=2, d_model=32, context=256))
    d = tmp_path_factory.mktemp("tiny")
    save_checkpoint(m, tok, d, {"name": "tiny-test"})
    return d


def _notes(score):
    return sorted((n.time, n.pitch, n.duration) for t in score.to("tick").tracks for n in t.notes)


def test_tokenizer_round_trip_keeps_notes(tok, tmp_path):
    path = make_sketch(tmp_path / "s.mid", tempo=96, bars=2)
    score = Score(str(path))
    canon, pmap = canonicalize(score)
    back = decode(tok, encode(tok, canon))
    ratio = back.ticks_per_quarter / score.ticks_per_quarter
    got = sorted((round(t / 1), p, round(d)) for t, p, d in _notes(back))
    want = sorted((round(t * ratio), p, round(d * ratio)) for t, p, d in _notes(score))
    assert got == want
    assert set(pmap.tracks) == {72, 32}  # melody and bass parts


@pytest.mark.parametrize("layers", [2, 1])
def test_numpy_runtime_matches_torch_model(tok, layers):
    """The NumPy decode loop computes the torch model's logits: at every prefilled position and
    after each step.  Past the window the cache holds the latest tokens' keys and values; in one
    layer they depend on their own tokens only, and rotary positions are relative, so there the
    torch model run on just the held tokens must agree too (deeper layers keep older context)."""
    from musegen.engines.symbolic.runtime import NumpyLM

    torch.manual_seed(1)
    m = MusicTransformer(ModelConfig(vocab_size=len(tok), n_layer=layers, n_head=2, d_model=32, context=64,
                                     dropout=0.0)).eval()
    lm = NumpyLM.from_module(m)
    x = torch.randint(0, len(tok), (2, 150))
    cache = lm.new_cache(2)
    end = 64 if layers > 1 else 150  # one layer: past the 64-token window, which slides 3 times
    slides = 0
    with torch.no_grad():
        np.testing.assert_allclose(lm.step(x[:, :30].numpy(), cache, every=True), m(x[:, :30]).numpy(),
                                   atol=1e-4)
        for t in range(30, end):
            before = cache.length
            got = lm.step(x[:, t:t + 1].numpy(), cache)
            slides += cache.length < before
            held = cache.length
            np.testing.assert_allclose(got, m(x[:, t + 1 - held:t + 1])[:, -1].numpy(), atol=1e-4)
    assert cache.pos == end and slides == (3 if layers == 1 else 0)


def test_checkpoint_is_safetensors_and_rebuilds(tiny_dir, tok):
    files = {p.name for p in Path(tiny_dir).iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    assert not any(f.endswith((".pt", ".pth", ".bin", ".pkl")) for f in files)
    model, tokenizer, cfg = load_checkpoint(tiny_dir)
    assert cfg["name"] == "tiny-test" and len(tokenizer) == len(tok)


def test_weights_never_load_through_pickle(tiny_dir, tmp_path, monkeypatch):
    import pickle

    def boom(*a, **k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(torch, "load", boom)
    load_checkpoint(tiny_dir)
    load_runtime(tiny_dir)
    # a pickle renamed to .safetensors is refused, not executed
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (bad / name).write_bytes((Path(tiny_dir) / name).read_bytes())
    (bad / "model.safetensors").write_bytes(pickle.dumps({"x": 1}))
    from musegen.errors import EngineError

    with pytest.raises(EngineError):
        load_checkpoint(bad)
    with pytest.raises(EngineError):
        load_runtime(bad)


def test_runtime_refuses_weights_that_do_not_fit_the_config(tiny_dir, tmp_path):
    from musegen.errors import EngineError

    odd = tmp_path / "odd"
    odd.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (odd / name).write_bytes((Path(tiny_dir) / name).read_bytes())
    cfg = json.loads((Path(tiny_dir) / "config.json").read_text())
    cfg["model"]["d_model"] *= 2
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EngineError, match="do not fit"):
        load_runtime(odd)


def test_sampler_outputs_always_decode(tiny_dir):
    model, tokenizer, _ = load_checkpoint(tiny_dir)
    sampler = ConstrainedSampler(model, tokenizer)
    from musegen.engines.symbolic.tokens import condition_tokens

    prompt = condition_tokens(tokenizer, "pop", 2, "major")
    gen = np.random.default_rng(3)
    rows = sampler.sample([prompt] * 4, bars=3, meter=(3, 4), generator=gen,
                          settings=SampleSettings(temperature=1.5, programs=(0, 72), key_pcs=frozenset({2, 4, 6, 7, 9, 11, 1})))
    for row in rows:
        assert row.count(sampler.g.bar_id) == 3
        score = decode(tokenizer, row)
        notes = [n for t in score.tracks for n in t.notes]
        assert notes, "a 3-bar sample has notes"
        assert all(n.pitch % 12 in {2, 4, 6, 7, 9, 11, 1} for n in notes)
        assert {t.program for t in score.tracks} <= {0, 72}
        bar = score.ticks_per_quarter * 3
        assert max(n.time for n in notes) < 3 * bar


def test_drafting_changes_speed_not_samples(tiny_dir):
    """Batch-1 decoding with drafted tokens samples what plain decoding samples, in fewer model calls,
    also after the KV window has slid (drafts must not make it slide elsewhere)."""
    model, tokenizer, _ = load_runtime(tiny_dir)
    sampler = ConstrainedSampler(model, tokenizer)
    from musegen.engines.symbolic.tokens import condition_tokens

    prompt = condition_tokens(tokenizer, "folk", 7, "major")
    settings = SampleSettings(temperature=0.7, programs=(72,))
    runs = {}
    for k in (0, 3):
        sampler.draft_len = k
        runs[k] = sampler.sample([prompt], bars=40, meter=(4, 4), settings=settings,
                                 generator=np.random.default_rng(11))[0], dict(sampler.last_stats)
    assert len(runs[0][0]) > 2 * model.cfg.context  # the window (256, sliding to 128) slid 3+ times
    assert runs[3][0] == runs[0][0]
    assert runs[0][1]["calls"] == runs[0][1]["tokens"]
    assert runs[3][1]["tokens"] == runs[0][1]["tokens"] and runs[3][1]["calls"] < runs[0][1]["calls"]


def test_tiny_model_learns(tok):
    """A few optimisation steps on real music lower the loss (the training loop works)."""
    from musegen.engines.symbolic.train import TrainConfig, train

    items = [(p.stem, str(p), "pop") for p in sorted(SAMPLES.glob("*.mid"))]
    corpus = build_corpus(tok, items, log=None)
    assert len(corpus) >= 4
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = train(tok, corpus, corpus, d,
                    model_cfg=ModelConfig(vocab_size=len(tok), n_layer=1, n_head=2, d_model=64, context=128,
                                          dropout=0.0),
                    train_cfg=TrainConfig(steps=60, batch=8, lr=3e-3, warmup=5, eval_every=59, eval_batches=2))
        losses = [r["train_loss"] for r in out["history"] if "train_loss" in r]
        assert losses[-1] < losses[0] - 1.0
        assert (Path(d) / "model.safetensors").is_file()
        rows = [json.loads(x) for x in (Path(d) / "train_log.jsonl").read_text().splitlines()]
        assert any("valid_loss" in r for r in rows)


def test_corpus_save_load_no_pickle(tok, tmp_path):
    items = [(p.stem, str(p), "folk") for p in sorted(SAMPLES.glob("*.mid"))[:2]]
    c = build_corpus(tok, items, log=None)
    c.save(tmp_path / "c.npz")
    c2 = TokenCorpus.load(tmp_path / "c.npz")
    assert np.array_equal(c.ids, c2.ids) and c2.names == c.names
    w = WindowSampler(tok, c2, 64, seed=1).batch(3)
    assert w.shape == (3, 65)


def _engine_request(preset_name="pop-ballad", **kw):
    from musegen.pipeline import load_seed, plan_request
    from musegen.presets import load_preset

    midi = kw.pop("midi", None)
    seed = load_seed(midi)[:2] if midi else (None, None)
    return plan_request(load_preset(preset_name), seed_score=seed[0], seed_analysis=seed[1], **kw)


def test_engine_same_seed_same_output_and_variations(tiny_dir):
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.io import score_digest

    eng = SymbolicEngine(model=str(tiny_dir))
    a = eng.generate(_engine_request(bars=2, random_seed=5, variations=2))
    b = eng.generate(_engine_request(bars=2, random_seed=5, variations=2))
    assert [score_digest(o.score) for o in a] == [score_digest(o.score) for o in b]
    assert score_digest(a[0].score) != score_digest(a[1].score)


def test_engine_extend_keeps_seed_and_parts(tiny_dir):
    from musegen.engines.symbolic.engine import SymbolicEngine

    midi = SAMPLES / "chord-loop.mid"
    req = _engine_request(midi=midi, bars=4, random_seed=2, continue_only=True)
    (out,) = SymbolicEngine(model=str(tiny_dir)).generate(req)
    seed = Score(str(midi))
    assert len(out.score.tracks) == len(seed.tracks)
    for st, gt in zip(seed.tracks, out.score.tracks):
        got = [(n.time, n.duration, n.pitch, n.velocity) for n in gt.notes][: len(st.notes)]
        assert got == [(n.time, n.duration, n.pitch, n.velocity) for n in st.notes]
        assert gt.program == st.program
    end = seed.end()
    assert any(n.time >= end for t in out.score.tracks for n in t.notes)
    assert out.score.end() <= 4 * 1920 + ((end + 1919) // 1920) * 1920


def test_shipped_weights_load_and_generate():
    """The packaged model is the default engine; it loads from safetensors and writes music."""
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.io import score_digest

    folder = shipped_checkpoint()
    assert (folder / "model.safetensors").stat().st_size < 30 * 2**20
    eng = SymbolicEngine()
    req = _engine_request("pop-ballad", bars=2, random_seed=1, variations=2)
    a = eng.generate(req)
    b = eng.generate(req)
    assert [score_digest(o.score) for o in a] == [score_digest(o.score) for o in b]
    for out in a:
        notes = [n for t in out.score.tracks if not t.is_drum for n in t.notes]
        assert len(notes) >= 4
        bar = 480 * 4
        assert max(n.time for n in notes) < 2 * bar


def test_cli_extend_with_the_default_model_keeps_the_sketch(cli, tmp_path):
    seed = make_sketch(tmp_path / "sketch.mid", tempo=110, bars=4, tonic=7)
    r = cli("extend", seed, "--bars", "4", "--seed", "3", "-o", tmp_path / "o", "--json")
    assert r.returncode == 0, r.stderr
    (res,) = json.loads(r.stdout)["results"]
    assert res["parameters"]["engine"] == "symbolic"
    out, src = Score(res["mid"]), Score(str(seed))
    for st, gt in zip(src.tracks, out.tracks):
        assert [(n.time, n.pitch) for n in gt.notes][: len(st.notes)] == [(n.time, n.pitch) for n in st.notes]
    assert out.end() > src.end()


def test_extend_never_imports_torch(tmp_path):
    """Sampling runs on NumPy: a cold `musegen extend` does not pay for importing torch."""
    import subprocess
    import sys

    seed = make_sketch(tmp_path / "sketch.mid", tempo=100, bars=2)
    code = ("import sys; from musegen.cli.main import run\n"
            "try:\n    run([%r, %r, '--bars', '2', '-o', %r])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch' in sys.modules)") % ("extend", str(seed), str(tmp_path / "o"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_cli_train_fine_tunes_and_the_result_generates(cli, tmp_path):
    """`musegen train` on a folder, then `generate --model` with what it wrote."""
    data = tmp_path / "my-midi"
    data.mkdir()
    for i in range(3):
        make_sketch(data / f"tune{i}.mid", tempo=100 + 5 * i, bars=8, tonic=i)
    model = tmp_path / "my-model"
    r = cli("train", "--data", data, "-o", model, "--steps", "2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["files"] == 3 and summary["steps"] == 2 and summary["model_style"] == "pop"
    assert summary["best_valid_loss"] < summary["base_valid_loss"] + 1.0
    _, _, config = load_checkpoint(model)
    assert config["name"] == "my-model" and config["base"] == "shipped" and config["method"] == "full"
    g = cli("generate", "--engine", "symbolic", "--model", model, "--bars", "2", "--seed", "1",
            "-o", tmp_path / "out", "--json")
    assert g.returncode == 0, g.stderr
    (res,) = json.loads(g.stdout)["results"]
    assert json.loads(Path(res["json"]).read_text())["analysis"]["duration_s"] > 1.0
    few = cli("train", "--data", data / "tune0.mid", "-o", tmp_path / "m2")
    assert few.returncode == 2 and "at least 2 MIDI files; found 1" in few.stderr


def _bar_tokens(tok, pitches, meter="4/4", duration="1.0.8"):
    """One REMI bar of the melody part: a note per position."""
    v = tok.vocab
    ids = [v["Bar_None"], v[f"TimeSig_{meter}"]]
    for i, p in enumerate(pitches):
        ids += [v[f"Position_{i * 8}"], v["Program_72"], v[f"Pitch_{p}"], v["Velocity_79"], v[f"Duration_{duration}"]]
    return ids


class _ScriptedSampler:
    """Stands in for ConstrainedSampler: each call returns the next scripted batch of candidates."""

    class _Cache:
        def __init__(self, rows=1):
            self.rows = rows

        def repeat(self, rows):
            return type(self)(rows)

    def __init__(self, tok, batches):
        from types import SimpleNamespace

        from musegen.engines.symbolic.sampler import Grammar

        self.g = Grammar(tok)
        self.batches = list(batches)
        self.calls = []
        self.fed = []  # what went into the one-row trunk cache
        self.model = SimpleNamespace(new_cache=lambda rows: self._Cache(rows))

    def prefill(self, ids, cache):
        self.fed.append(ids[0].tolist())
        return np.zeros((1, self.g.V), np.float32)

    def sample(self, prompts, *, bars, meter, settings, generator, progress=None, prefilled=None, guides=None):
        cache, logits = prefilled
        assert cache.rows == len(prompts) == logits.shape[0]
        self.calls.append((len(prompts), bars, list(prompts[0])))
        return self.batches.pop(0)


def test_ranked_sampling_keeps_the_phrase_closest_to_the_sketch_profile(tok, monkeypatch):
    from musegen.engines.symbolic import continuation as cont

    monkeypatch.setattr(cont, "RANK_PHRASE_BARS", 2)

    seed = _bar_tokens(tok, [60, 64, 67, 64])  # C major triad, 4 notes a bar
    profile = tuple(1 / 3 if pc in (0, 4, 7) else 0.0 for pc in range(12))
    plan = cont.PromptPlan(prompt=[1, 2] + seed, body=seed, prompt_bars=1, programs=(72,),
                           key_pcs=frozenset({0, 2, 4, 5, 7, 9, 11}), part_map={72: 0}, pc_profile=profile)
    good_a = _bar_tokens(tok, [67, 64, 60, 64]) * 2  # 2 bars = one phrase
    good_b = _bar_tokens(tok, [60, 67, 72, 67]) * 2
    off = _bar_tokens(tok, [61, 66, 68, 63]) * 2  # chromatic, none in the profile
    dense = _bar_tokens(tok, [60, 64, 67, 64, 60, 64, 67, 64]) * 2  # right notes, twice the sketch's density
    sampler = _ScriptedSampler(tok, [[off, good_a, off], [dense, off, good_b]])
    req = _engine_request(bars=4, random_seed=1, variations=1)
    req = type(req)(**{**req.__dict__, "seed": Score(480)})  # a sketch: the density term applies
    rows, picks = cont.sample_ranked(sampler, plan, req, SampleSettings(), None, candidates=3)
    assert picks == [[1, 2]]
    # the prompt is fed once, then each chosen phrase (not the others) extends the same cache
    assert sampler.fed == [plan.prompt, good_a, good_b]
    assert rows == [good_a + good_b]
    assert [(k, bars) for k, bars, _ in sampler.calls] == [(3, 2), (3, 2)]
    # the second phrase continues from the first one's chosen bars
    assert sampler.calls[1][2][-len(good_a):] == good_a
    # the same pitch content at twice the sketch's notes per bar ranks lower; without the density term, level
    assert cont.phrase_score(sampler.g, [], dense, profile, 4.0, 2) < cont.phrase_score(
        sampler.g, [], good_a, profile, 4.0, 2)
    assert cont.phrase_score(sampler.g, [], dense, profile, None, 2) == pytest.approx(cont.phrase_score(
        sampler.g, [], good_a, profile, None, 2))


def test_ranking_judges_only_the_sketch_parts(tok):
    """A part the preset adds (harmony) does not count against a candidate: its chord tones have
    no counterpart in a melody-only sketch.  Judged on all parts, the harmony would lose every time."""
    from musegen.engines.symbolic import continuation as cont
    from musegen.engines.symbolic.sampler import Grammar

    g, v = Grammar(tok), tok.vocab
    melody = _bar_tokens(tok, [67, 71, 74, 71])  # G major arpeggio
    profile = tuple(1 / 3 if pc in (7, 11, 2) else 0.0 for pc in range(12))
    with_harmony = list(melody)
    with_harmony += [v["Position_16"], v["Program_0"]]
    for p in (60, 64, 69):  # another part's chord, pitch classes the sketch never played
        with_harmony += [v[f"Pitch_{p}"], v["Velocity_79"], v["Duration_2.0.8"]]
    alone = cont.phrase_score(g, [], melody, profile, 4.0, 1, frozenset({72}))
    assert cont.phrase_score(g, [], with_harmony, profile, 4.0, 1, frozenset({72})) == pytest.approx(alone)
    assert cont.phrase_score(g, [], with_harmony, profile, 4.0, 1, None) < alone - 0.2


def test_candidates_option_is_validated_and_recorded(tiny_dir):
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.errors import ParameterError

    eng = SymbolicEngine(model=str(tiny_dir))
    midi = SAMPLES / "melody.mid"
    for bad in (0, 17, 2.5, "many", True):
        req = _engine_request(midi=midi, bars=2, random_seed=2, continue_only=True, engine_options={"candidates": bad})
        with pytest.raises(ParameterError, match=f"candidates .*{bad!r}"):
            eng.generate(req)
    (out,) = eng.generate(_engine_request(midi=midi, bars=3, random_seed=2, continue_only=True))
    assert out.info["candidates"] == 4 and len(out.info["phrase_picks"]) == 3  # one pick a bar
    (again,) = eng.generate(_engine_request(midi=midi, bars=3, random_seed=2, continue_only=True))
    from musegen.midi.io import score_digest

    assert score_digest(again.score) == score_digest(out.score)
    (plain,) = eng.generate(_engine_request(bars=2, random_seed=2))  # no sketch: nothing to rank by
    assert plain.info["candidates"] == 1 and "phrase_picks" not in plain.info
    # a sketch that a preset's parts join (generate --midi): one pass, so the new parts get their bars
    (arranged,) = eng.generate(_engine_request(midi=midi, bars=2, random_seed=2))
    assert arranged.info["candidates"] == 1


# -- reprise: restating the sketch ---------------------------------------------------------

def test_reprise_plan_alternates_restated_and_free_sections():
    from musegen.engines.symbolic.recall import reprise_plan

    phrase, refs = reprise_plan(8, 20)  # A (the sketch) A' B A''
    assert phrase == 8 and refs == list(range(8)) + [None] * 8 + [0, 1, 2, 3]
    phrase, refs = reprise_plan(2, 10)  # a 2-bar motif: sections of 4 bars
    assert phrase == 2 and refs == [0, 1, 0, 1, None, None, None, None, 0, 1]
    assert reprise_plan(12, 3) == (8, [0, 1, 2])  # the sketch's last 8 bars are the phrase
    assert reprise_plan(0, 3) == (0, [None] * 3)


def test_reference_bars_hold_each_onset_s_notes(tok):
    from musegen.engines.symbolic.recall import reference_bars
    from musegen.engines.symbolic.sampler import Grammar

    g, v = Grammar(tok), tok.vocab
    ids = _bar_tokens(tok, [60, 64]) + _bar_tokens(tok, []) + _bar_tokens(tok, [67])
    bars = reference_bars(g, ids)
    assert len(bars) == 3
    assert sorted(bars[0].notes) == [0, 8] and bars[0].notes[8][0].pitch == v["Pitch_64"]
    assert bars[0].opener(-1, g) == v["Position_0"] and bars[0].opener(0, g) == v["Position_8"]
    assert bars[0].opener(8, g) == v["Bar_None"]  # nothing after the last onset: the bar line
    assert bars[1].notes == {} and bars[1].opener(-1, g) == v["Bar_None"]
    assert bars[2].notes[0][0].duration == v["Duration_1.0.8"]


def _bar_notes(score, bar_ticks, bar):
    return sorted((n.time - bar * bar_ticks, n.pitch) for t in score.tracks for n in t.notes
                  if bar * bar_ticks <= n.time < (bar + 1) * bar_ticks)


def test_reprise_restates_the_sketch_then_writes_free_bars():
    """Extending a sketch restates its bars (varied, by the ranking) in the first section; a
    strong bonus restates them note for note, none writes new bars."""
    from musegen.engines.symbolic.engine import SymbolicEngine

    midi = SAMPLES / "melody.mid"
    seed = Score(str(midi))
    bar = seed.ticks_per_quarter * 4 * seed.time_signatures[0].numerator // seed.time_signatures[0].denominator
    sketch_bars = -(-seed.end() // bar)
    eng = SymbolicEngine()

    def restated(options, bars=8):
        req = _engine_request(midi=midi, bars=bars, random_seed=4, continue_only=True, engine_options=options)
        (out,) = eng.generate(req)
        same = sum(_bar_notes(out.score, bar, sketch_bars + j) == _bar_notes(seed, bar, sketch_bars - 8 + j)
                   for j in range(8))
        return same, out

    copied, out = restated({"reprise": 10, "candidates": 1})
    assert copied >= 7, copied
    assert out.info["reprise"] == 10
    free, _ = restated({"reprise": 0})
    assert free <= 1, free
    default, out = restated({})
    assert out.info["reprise"] == _shipped_reprise() and free < default, (free, default)


def test_numeric_options_are_validated_naming_option_and_value():
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.errors import ParameterError

    eng = SymbolicEngine()
    midi = SAMPLES / "melody.mid"
    bad_values = {"reprise": (-1, 11, "loud", True, float("nan")), "top_p": ("abc", 1.5, 0),
                  "top_k": (-1, 2.5), "threads": ("x", -1), "tonal_prior": (11, "strong")}
    for key, values in bad_values.items():
        for bad in values:
            req = _engine_request(midi=midi, bars=2, random_seed=2, continue_only=True, engine_options={key: bad})
            with pytest.raises(ParameterError, match=f"{key} must be .*{bad!r}"):
                eng.generate(req)
    (plain,) = eng.generate(_engine_request(bars=1, random_seed=2))  # no sketch: nothing to restate
    assert plain.info["reprise"] == 0


def test_extend_writes_into_the_sketch_track_that_plays_not_an_empty_one(tiny_dir):
    """A song's melody track can be empty in its first bars (a sketch clipped from POP909 through
    the API keeps it; loading a file drops it): the piano part the sketch does play goes on in
    the piano track, and the empty track stays empty."""
    from symusic import Note, Tempo, TimeSignature, Track

    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.midi.analysis import analyze_score
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    s = Score(480)
    s.tempos.append(Tempo(0, 100.0))
    s.time_signatures.append(TimeSignature(0, 4, 4))
    empty = Track(name="MELODY", program=0)
    piano = Track(name="PIANO", program=0)
    for bar in range(2):
        for beat in range(4):
            for p in (48, 55, 60, 64):
                piano.notes.append(Note(bar * 1920 + beat * 480, 480, p + (5 if bar else 0), 70))
    s.tracks.extend([empty, piano])
    analysis = analyze_score(s)
    _, pmap = canonicalize(s, list(analysis.tracks))
    assert pmap.tracks == {0: 1}
    req = plan_request(load_preset("pop-ballad"), seed_score=s, seed_analysis=analysis, bars=2, random_seed=1,
                       continue_only=True)
    (out,) = SymbolicEngine(model=str(tiny_dir)).generate(req)
    assert len(out.score.tracks[0].notes) == 0
    assert len(out.score.tracks[1].notes) > len(piano.notes)


def _notes_of(track):
    return [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.mid")))
def test_every_sample_extends_with_the_shipped_model_and_all_its_parts_go_on(sample):
    """A drum-only sketch used to fail ('no allowed program token'); every sketch part continues."""
    from musegen.engines.symbolic.engine import SymbolicEngine

    midi = SAMPLES / sample
    req = _engine_request(midi=midi, bars=4, random_seed=1, continue_only=True)
    (out,) = SymbolicEngine().generate(req)
    seed = req.seed
    end = max(n.time + n.duration for t in seed.tracks for n in t.notes)
    assert len(out.score.tracks) == len(seed.tracks)
    for st, gt in zip(seed.tracks, out.score.tracks):
        assert _notes_of(gt)[: len(st.notes)] == _notes_of(st)
        if len(st.notes):
            assert any(n.time >= end for n in gt.notes), f"{sample}: track {st.name!r} stops with the sketch"


def _with_roles(preset_name, **roles):
    import dataclasses

    from musegen.presets import Instruments, load_preset

    p = load_preset(preset_name)
    return dataclasses.replace(p, instruments=Instruments(**roles))


@pytest.mark.parametrize("roles", [{"drums": 0}, {"lead": 73}, {"lead": 73, "drums": 0}, {"bass": 33, "drums": 0}])
def test_symbolic_engine_writes_exactly_the_preset_roles(roles):
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.pipeline import plan_request

    preset = _with_roles("pop-ballad", **roles)
    (out,) = SymbolicEngine().generate(plan_request(preset, bars=4, random_seed=1))
    playing = [t for t in out.score.tracks if len(t.notes)]
    assert any(t.is_drum for t in playing) == ("drums" in roles)
    melodic = sorted(int(t.program) for t in playing if not t.is_drum)
    assert melodic == sorted(v for r, v in roles.items() if r != "drums"), [(t.name, t.program) for t in playing]


def _shipped_reprise() -> float:
    """The reprise `extend` uses by default with the shipped model: its config's validation-chosen
    default, else the engine's."""
    import json as _json

    from musegen.engines.symbolic.checkpoint import shipped_checkpoint
    from musegen.engines.symbolic.engine import DEFAULT_REPRISE, model_defaults

    config = _json.loads((shipped_checkpoint() / "config.json").read_text())
    return float(model_defaults(config).get("reprise", DEFAULT_REPRISE))
