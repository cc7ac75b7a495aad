"""scripts/eval_nll.py: a version-1 and a version-3 checkpoint scored on the same REMI tokens (issue 15)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import SAMPLES  # noqa: E402
from musegen.engines.symbolic.checkpoint import save_checkpoint  # noqa: E402
from musegen.engines.symbolic.data import build_corpus  # noqa: E402
from musegen.engines.symbolic.layout import Layout  # noqa: E402
from musegen.engines.symbolic.model import ModelConfig, MusicTransformer  # noqa: E402
from musegen.engines.symbolic.tokens import build_tokenizer, model_styles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import eval_nll  # noqa: E402

MAX_BODY = 100


@pytest.fixture(scope="module")
def tok2():
    return build_tokenizer(version=2)


@pytest.fixture(scope="module")
def corpus(tok2):
    # two sources; the drums style has no token in version 1 (the old model gets its nearest, pop)
    items = [(("groove/" if p.stem.startswith("drum") else "pop909/") + p.stem, str(p),
              "drums" if p.stem.startswith("drum") else "pop") for p in sorted(SAMPLES.glob("*.mid"))]
    return build_corpus(tok2, items, log=None)


def _checkpoints(tmp: Path, tok2, *, zero: bool = False) -> tuple[Path, Path]:
    """A tiny version-1 checkpoint and a tiny version-3 one (its extra tokens after version 2's)."""
    torch.manual_seed(0)
    tok1 = build_tokenizer(version=1)
    layout = Layout(tok2)
    out = []
    for name, tok, vocab, meta in (
            ("v1", tok1, len(tok1), {"tokenizer_version": 1}),
            ("v3", tok2, layout.vocab_size, {"tokenizer_version": 3, "extra_tokens": list(layout.extra)})):
        model = MusicTransformer(ModelConfig(vocab_size=vocab, n_layer=1, n_head=2, d_model=32, context=128,
                                             dropout=0.0))
        if zero:  # every logit 0: each scored token costs exactly ln(vocab)
            with torch.no_grad():
                for p in model.parameters():
                    p.zero_()
        out.append(save_checkpoint(model, tok, tmp / name, {**meta, "step": 7}))
    return out[0], out[1]


def _scorers(v1: Path, v3: Path, tok2):
    return {"old": eval_nll.load_scorer(v1, tok2.vocab, name="old"),
            "new": eval_nll.load_scorer(v3, tok2.vocab, name="new")}


def test_both_models_score_the_same_remi_tokens(tmp_path, tok2, corpus):
    v1, v3 = _checkpoints(tmp_path, tok2)
    scorers = _scorers(v1, v3, tok2)
    assert scorers["new"].layout is not None and scorers["old"].layout is None
    report = eval_nll.evaluate(scorers, corpus, tok2, max_body=MAX_BODY)
    every = report["overall"]
    assert every["old"]["remi_tokens_scored"] == every["new"]["remi_tokens_scored"] == every["remi_tokens"]
    # every token of the corpus is in a window, or counted as left out (bars longer than a body)
    assert every["remi_tokens"] + report["tokens_in_no_window"] == len(corpus.ids)
    assert set(report["by_source"]) == {"groove", "pop909"}
    assert sum(r["remi_tokens"] for r in report["by_source"].values()) == every["remi_tokens"]
    for r in [every, *report["by_source"].values()]:
        for model in ("old", "new"):
            for kind in ("remi_only", "with_controls"):
                assert math.isfinite(r[model][kind]["nats"]) and r[model][kind]["nats"] > 0
        assert r["new"]["with_controls"]["nats"] > r["new"]["remi_only"]["nats"]  # the controls cost something
        assert r["old"]["with_controls"] == r["old"]["remi_only"]  # no controls in version 1
        d = r["new_minus_old"]["with_controls"]
        assert math.isclose(d["nats"], r["new"]["with_controls"]["nats"] - r["old"]["with_controls"]["nats"],
                            abs_tol=2e-5)
        assert math.isfinite(d["se_nats"]) and d["se_nats"] > 0
    # each window's body starts at a bar line
    bar = tok2.vocab["Bar_None"]
    for row in report["rows"]:
        ids = corpus.piece(corpus.names.index(row["piece"]))
        assert ids[row["start"]] == bar and row["end"] - row["start"] <= MAX_BODY


def test_a_window_scores_what_the_model_predicts_for_its_body(tmp_path, tok2, corpus):
    """The first window's body NLL is the model's own cross-entropy over those targets (v3: after its controls)."""
    v1, v3 = _checkpoints(tmp_path, tok2)
    scorers = _scorers(v1, v3, tok2)
    w = eval_nll.bar_windows(corpus, tok2.vocab["Bar_None"], MAX_BODY)
    first = eval_nll.Windows(w.piece[:1], w.start[:1], w.end[:1], 0, 0)
    p, a, b = int(first.piece[0]), int(first.start[0]), int(first.end[0])
    for name, s in scorers.items():
        got = eval_nll.score_windows(s, corpus, model_styles(tok2), first)
        body = s.remap[corpus.piece(p)[a:b].astype(np.int64)]
        head = s.prefix(model_styles(tok2)[corpus.style[p]], int(corpus.tonic[p]), bool(corpus.minor[p]))
        ctrl = s.controls(body)
        assert (len(ctrl) > 0) == (name == "new")
        seq = torch.tensor([head + ctrl + body.tolist()])
        targets = seq[:, 1:].clone()
        targets[:, :len(head) + len(ctrl) - 1] = -100  # only the body
        with torch.no_grad():
            _, loss = s.model(seq[:, :-1], targets)
        assert got["n_remi"][0] == b - a
        assert math.isclose(got["remi"][0], float(loss) * (b - a), rel_tol=1e-4)


def test_uniform_models_cost_ln_vocab_per_token(tmp_path, tok2, corpus):
    v1, v3 = _checkpoints(tmp_path, tok2, zero=True)
    report = eval_nll.evaluate(_scorers(v1, v3, tok2), corpus, tok2, max_body=MAX_BODY, windows=3, seed=1)
    r = report["overall"]
    assert r["windows"] == 3
    v3_vocab = Layout(tok2).vocab_size
    assert r["old"]["remi_only"]["nats"] == pytest.approx(math.log(407), abs=1e-4)
    assert r["new"]["remi_only"]["nats"] == pytest.approx(math.log(v3_vocab), abs=1e-4)
    ctrl = r["new"]["controls_per_window"] * r["windows"]
    assert r["new"]["with_controls"]["nats"] == pytest.approx(
        math.log(v3_vocab) * (1 + ctrl / r["remi_tokens"]), abs=1e-4)
    assert r["new"]["with_controls"]["bits"] == pytest.approx(r["new"]["with_controls"]["nats"] / math.log(2),
                                                              abs=1e-4)


def test_script_writes_the_report_and_refuses_a_missing_folder(tmp_path, tok2, corpus):
    v1, v3 = _checkpoints(tmp_path, tok2)
    corpus.save(tmp_path / "test.npz")
    base = [sys.executable, str(ROOT / "scripts" / "eval_nll.py"), "--corpus", str(tmp_path / "test.npz"),
            "--max-body", str(MAX_BODY), "--windows", "0"]
    done = subprocess.run(base + ["--old", str(v1), "--new", str(v3), "--json", str(tmp_path / "r.json")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["overall"] == printed["overall"] and len(saved["rows"]) == printed["overall"]["windows"]
    assert printed["models"]["new"]["tokenizer_version"] == 3 and printed["models"]["old"]["vocab_size"] == 407
    bad = subprocess.run(base + ["--old", str(v1), "--new", str(tmp_path / "nowhere")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: ") and "nowhere" in bad.stderr
    assert "Traceback" not in bad.stderr
