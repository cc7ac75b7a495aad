"""Batched engine calls in batch runs: chunks of compatible jobs, one sampler batch, same results."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from musegen.batch.local import MAX_CHUNK, JobQueue, batch_key
from musegen.engines.batching import generate_batched
from musegen.errors import EngineError


def _notes(score):
    return sorted((t.program, t.is_drum, n.time, n.duration, n.pitch, n.velocity)
                  for t in score.tracks for n in t.notes)


def _request(seed: int, **kw):
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    kw.setdefault("bars", 2)
    return plan_request(load_preset(kw.pop("preset", "pop-ballad")), random_seed=seed, tempo=100, key="C", **kw)


# -- the symbolic engine ----------------------------------------------------------------

def _shipped_context() -> int:
    """The shipped model's window, in tokens (its config.json)."""
    from musegen.engines.symbolic.checkpoint import shipped_checkpoint

    return int(json.loads((shipped_checkpoint() / "config.json").read_text())["model"]["context"])


def test_symbolic_batch_gives_each_request_its_solo_result():
    """A request sampled in a batch with others gives the notes it gives alone.

    Alone, a request decodes at batch 1 with drafted tokens; in a batch, with
    plain steps.  Both draw the same tokens, also after the model's window
    has slid (the requests here are long enough for it to slide).
    """
    from musegen.engines.symbolic.engine import SymbolicEngine

    eng = SymbolicEngine()
    # 5 bars of pop-ballad run past a 512-token window: as many more bars as the shipped model's window is longer
    bars = 5 * _shipped_context() // 512
    requests = [_request(s, bars=bars) for s in range(6)]
    requests.append(_request(6, bars=bars, variations=2))         # its two rows share one generator
    requests.append(_request(7, bars=bars, temperature=0.8))      # another temperature: another sampler call
    requests.append(_request(8, preset="lofi-chill", bars=1))  # another length: another call
    many = generate_batched(eng, requests)
    assert [len(o) for o in many] == [r.variations for r in requests]
    assert [o[0].info["batch"] for o in many] == [7] * 7 + [1, 1]
    context = eng._setup(requests[0]).sampler.model.cfg.context
    assert max(o[0].info["tokens"] for o in many[:6]) > context, "no request ran past the window"
    for req, batched in zip(requests, many):
        alone = eng.generate(req)
        for a, b in zip(alone, batched):
            if req.variations > 1:
                # two rows of one generator, in a call of 2 rows alone and of 8 in the batch: numpy's
                # matmul rounds differently at another batch size, and over a long piece one draw can
                # flip (with the 6.1 M-parameter model, in the 6th of 10 bars); the opening agrees
                early = 2 * a.score.ticks_per_quarter * 4
                assert [n for n in _notes(a.score) if n[2] < early] == \
                    [n for n in _notes(b.score) if n[2] < early], req.random_seed
                continue
            assert _notes(a.score) == _notes(b.score), req.random_seed
            # the sidecar says the same of both, but for the batch it was sampled in
            assert a.info["batch"] == 1 and {**a.info, "batch": b.info["batch"]} == b.info
    # a batch is no more than its rows: another set of neighbours, the same result
    again = generate_batched(eng, [requests[3], requests[0]])
    assert _notes(again[0][0].score) == _notes(many[3][0].score)
    assert _notes(again[1][0].score) == _notes(many[0][0].score)
    assert _notes(many[0][0].score) != _notes(many[1][0].score)


def test_symbolic_batch_restates_each_request_s_own_sketch(tmp_path):
    """One-pass requests that restate their sketches (reprise, one candidate) batch together, each
    row guided by its own sketch, and give what they give alone."""
    from conftest import make_sketch
    from musegen.engines.symbolic.engine import SymbolicEngine
    from musegen.pipeline import load_seed

    requests = []
    for s in range(3):
        score, analysis = load_seed(make_sketch(tmp_path / f"s{s}.mid", tempo=100, bars=2, tonic=2 * s))[:2]
        requests.append(_request(s, bars=3, seed_score=score, seed_analysis=analysis, continue_only=True,
                                 engine_options={"candidates": 1}))
    eng = SymbolicEngine()
    many = generate_batched(eng, requests)
    assert [o[0].info["batch"] for o in many] == [3] * 3
    assert all(o[0].info["reprise"] == _shipped_reprise() for o in many)
    for req, batched in zip(requests, many):
        assert _notes(eng.generate(req)[0].score) == _notes(batched[0].score)


# -- the pipeline: batched engine calls, failures kept apart ------------------------------

class _FlakyEngine:
    """Procedural output; the batched call fails whenever seed 13 is in it, and so does seed 13 alone."""

    name = "flaky"
    produces = "midi"

    def __init__(self):
        from musegen.engines.procedural import ProceduralEngine

        self.inner = ProceduralEngine()
        self.calls: list[tuple[str, int]] = []

    def generate(self, request, progress=None):
        return self.run_batch([self.prepare(request)])[0]

    def prepare(self, request):
        from types import SimpleNamespace

        return SimpleNamespace(request=request, batch_key="any", rows=request.variations)

    def max_rows(self, prepared):
        return None

    def run_batch(self, batch, progress=None):
        requests = [p.request for p in batch]
        self.calls.append(("many", len(requests)) if len(requests) > 1 else ("one", requests[0].random_seed))
        if any(r.random_seed == 13 for r in requests):
            raise EngineError("seed 13 is unlucky")
        outs = [self.inner.generate(r) for r in requests]
        for o in outs:
            o[0].info["batch"] = len(requests)
        return outs


def test_generate_many_batches_and_keeps_a_failure_to_its_own_call(tmp_path, monkeypatch):
    from musegen import pipeline
    from musegen.engines import registry

    flaky = _FlakyEngine()
    monkeypatch.setattr(registry, "get_engine", lambda name, **kw: flaky)
    monkeypatch.setattr(registry, "engine_options", lambda name: None)  # a stand-in engine declares none
    calls = [dict(preset="synthwave", bars=2, seed=s, engine="flaky", out_dir=tmp_path / str(s), post=[])
             for s in (1, 2, 3)]
    done = {i: (out, cost) for i, out, cost in pipeline.generate_many(calls)}
    assert flaky.calls == [("many", 3)]
    assert all(out[0].sidecar["engine"]["info"]["batch"] == 3 and cost > 0 for out, cost in done.values())

    flaky.calls.clear()
    calls.insert(1, dict(calls[0], seed=13, out_dir=tmp_path / "13"))
    calls.append(dict(calls[0], seed=4, out_dir=tmp_path / "4", sample_rate=1))  # refused before the engine
    done = {i: out for i, out, _ in pipeline.generate_many(calls)}
    assert isinstance(done[1], EngineError) and "unlucky" in str(done[1])
    assert "sample rate" in str(done[4])
    assert [r[0].wav.is_file() for i, r in sorted(done.items()) if i not in (1, 4)] == [True] * 3
    assert flaky.calls == [("many", 4), ("one", 1), ("one", 13), ("one", 2), ("one", 3)]


def test_a_failed_batched_call_is_logged_with_its_reason(tmp_path, monkeypatch, caplog):
    """Falling back to one request at a time says why, in one warning line."""
    from musegen import pipeline
    from musegen.engines import registry

    flaky = _FlakyEngine()
    monkeypatch.setattr(registry, "get_engine", lambda name, **kw: flaky)
    monkeypatch.setattr(registry, "engine_options", lambda name: None)  # a stand-in engine declares none
    calls = [dict(preset="synthwave", bars=2, seed=s, engine="flaky", out_dir=tmp_path / str(s), post=[])
             for s in (1, 13)]
    with caplog.at_level("WARNING", logger="musegen"):
        done = {i: out for i, out, _ in pipeline.generate_many(calls)}
    assert done[0][0].wav.is_file() and isinstance(done[1], EngineError)
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "batched call of 2 requests failed" in line and "EngineError: seed 13 is unlucky" in line
    assert "\n" not in line


class _GreedyEngine(_FlakyEngine):
    name = "greedy"

    def run_batch(self, batch, progress=None):
        self.calls.append(("many", len(batch)))
        raise MemoryError


def test_running_out_of_memory_in_a_batch_is_not_retried_one_by_one(tmp_path, monkeypatch):
    from musegen import pipeline
    from musegen.engines import registry

    greedy = _GreedyEngine()
    monkeypatch.setattr(registry, "get_engine", lambda name, **kw: greedy)
    monkeypatch.setattr(registry, "engine_options", lambda name: None)  # a stand-in engine declares none
    calls = [dict(preset="synthwave", bars=2, seed=s, engine="greedy", out_dir=tmp_path / str(s), post=[])
             for s in (1, 2)]
    with pytest.raises(MemoryError):
        list(pipeline.generate_many(calls))
    assert greedy.calls == [("many", 2)]
    assert not list(tmp_path.rglob("*.wav"))


# -- chunks -------------------------------------------------------------------------------

def _job(i: int, seed: int, command: str = "generate", **params):
    return {"id": f"j{i}", "index": i, "command": command, "engine": "symbolic",
            "params": {"preset": "pop-ballad", "bars": 2, "seed": seed, **params}}


def test_chunks_hold_compatible_jobs_and_leave_no_worker_idle():
    jobs = [_job(i, i, lufs=-14.0 - i % 3) for i in range(20)]           # seeds and loudness: one key
    jobs += [_job(20 + i, i, temperature=0.8) for i in range(3)]          # another key
    jobs.append({"id": "r", "index": 23, "command": "render", "engine": None, "params": {"midi": "a.mid"}})
    assert batch_key(jobs[0]) == batch_key(jobs[5]) != batch_key(jobs[20])
    assert batch_key(jobs[-1]) is None
    q = JobQueue(jobs, workers=2)
    chunks = []
    while q:
        left = len(q)
        chunk = q.take()
        assert 1 <= len(chunk) <= min(MAX_CHUNK, -(-left // 2))
        assert len({batch_key(j) for j in chunk}) == 1
        chunks.append(chunk)
    assert sorted(j["id"] for c in chunks for j in c) == sorted(j["id"] for j in jobs)
    assert [len(c) for c in chunks][:3] == [8, 8, 4]
    assert [j["id"] for j in next(c for c in chunks if c[0]["id"] == "r")] == ["r"]

    q = JobQueue(jobs[:4], workers=1)
    q.retry(jobs[5])  # its worker died: it runs alone
    assert [j["id"] for j in q.take()] == ["j5"]
    assert len(q.take()) == 4


# -- end to end ---------------------------------------------------------------------------

SEEDS_PLAN = """
title = "seed sweep"
[defaults]
engine = "symbolic"
preset = "pop-ballad"
bars = 2
tempo = 100
key = "C"
[[sweep]]
label = "seeds"
grid.seed = [1, 2, 3, 4, 5]
[[job]]
label = "bad soundfont"
seed = 6
soundfont = "broken.sf2"
"""


def test_batch_run_batches_a_seed_sweep_isolates_a_failure_and_resumes(tmp_path):
    from symusic import Score

    (tmp_path / "broken.sf2").write_bytes(b"RIFF\0\0\0\0sfbk" + bytes(64))
    plan = tmp_path / "plan.toml"
    plan.write_text(SEEDS_PLAN, encoding="utf-8")
    out = tmp_path / "run"
    r = run_cli("batch", plan, "-o", out, "--workers", "1", "--no-images", "--json")
    assert r.returncode == 1, r.stderr
    rows = {row["id"]: row for row in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    ok = [row for row in rows.values() if row["status"] == "ok"]
    (bad,) = [row for row in rows.values() if row["status"] != "ok"]
    assert len(ok) == 5 and "broken.sf2" in bad["error"]
    assert [row["batch_size"] for row in ok] == [5] * 5, "one worker: the sweep is sampled as one batch"
    side = json.loads((out / ok[0]["outputs"]["json"]).read_text())
    assert side["engine"]["info"]["batch"] == 5
    assert all(0 < row["wall_s"] < 60 for row in ok)

    # a job of the batch, generated alone by the CLI, has the same notes
    seed = ok[2]["params"]["seed"]
    g = run_cli("generate", "--engine", "symbolic", "--preset", "pop-ballad", "--bars", "2", "--tempo", "100",
                "--key", "C", "--seed", str(seed), "-o", tmp_path / "solo", "--json")
    assert g.returncode == 0, g.stderr
    (solo_mid,) = (tmp_path / "solo").glob("*.mid")
    assert _notes(Score(str(solo_mid))) == _notes(Score(str(out / ok[2]["outputs"]["mid"])))

    # resume: the finished jobs are skipped, the failed one runs again (and fails again)
    (out / ok[0]["id"]).joinpath("gone").write_text("")  # a marker that a rerun would remove
    r = run_cli("batch", plan, "-o", out, "--resume", "--workers", "2", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert (doc["skipped"], doc["ok"], doc["failed"]) == (5, 0, 1)
    assert (out / ok[0]["id"] / "gone").exists()


def _shipped_reprise() -> float:
    """The reprise `extend` uses by default with the shipped model: its config's validation-chosen
    default, else the engine's."""
    import json as _json

    from musegen.engines.symbolic.checkpoint import shipped_checkpoint
    from musegen.engines.symbolic.engine import DEFAULT_REPRISE, model_defaults

    config = _json.loads((shipped_checkpoint() / "config.json").read_text())
    return float(model_defaults(config).get("reprise", DEFAULT_REPRISE))
