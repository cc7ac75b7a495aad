"""Resumable training, tokenizer versions and the shipped model's card (issue 15 groundwork)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import SAMPLES  # noqa: E402
from musegen.engines.symbolic.data import build_corpus  # noqa: E402
from musegen.engines.symbolic.model import ModelConfig  # noqa: E402
from musegen.engines.symbolic.tokens import build_tokenizer, model_styles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "musegen" / "engines" / "symbolic" / "weights"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def corpus(tok):
    items = [(p.stem, str(p), "pop") for p in sorted(SAMPLES.glob("*.mid"))]
    c = build_corpus(tok, items, log=None)
    assert len(c) >= 4
    return c


def _tiny(tok):
    # dropout on: the resumed run must also restore torch's RNG to match
    return ModelConfig(vocab_size=len(tok), n_layer=1, n_head=2, d_model=32, context=64, dropout=0.1)


def _model_tensors(state_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v for k, v in load_file(str(state_dir / "state" / "tensors.safetensors")).items()
            if not k.startswith("rng.")}


def test_resume_is_bit_for_bit(tok, corpus, tmp_path):
    """20 steps straight and 10 + resume 10 give identical weights and optimizer moments."""
    from musegen.engines.symbolic.train import TrainConfig, train

    tc = TrainConfig(steps=20, batch=4, lr=3e-3, warmup=3, eval_every=7, eval_batches=1, seed=3)
    a, b = tmp_path / "a", tmp_path / "b"
    train(tok, corpus, corpus, a / "out", model_cfg=_tiny(tok), train_cfg=tc, state_dir=a / "st")
    first = train(tok, corpus, corpus, b / "out", model_cfg=_tiny(tok),
                  train_cfg=TrainConfig(**{**tc.__dict__, "until": 10}), state_dir=b / "st")
    assert first["stopped"] == "until" and first["steps"] == 10
    meta = json.loads((b / "st" / "state" / "state.json").read_text())
    assert meta["next_step"] == 10
    done = train(tok, corpus, corpus, b / "out", model_cfg=_tiny(tok), train_cfg=tc, state_dir=b / "st",
                 resume=True)
    assert done["steps"] == 20 and "stopped" not in done
    ta, tb = _model_tensors(a / "st"), _model_tensors(b / "st")
    assert ta.keys() == tb.keys() and any(k.startswith("opt.") for k in ta)
    for k in ta:
        assert np.array_equal(ta[k], tb[k]), k
    ha = [r["train_loss"] for r in json.loads((a / "st" / "state" / "state.json").read_text())["history"]
          if "train_loss" in r]
    hb = [r["train_loss"] for r in json.loads((b / "st" / "state" / "state.json").read_text())["history"]
          if "train_loss" in r]
    assert ha == hb


def test_resume_refuses_a_missing_state_or_another_shape(tok, corpus, tmp_path):
    from musegen.engines.symbolic.train import TrainConfig, train
    from musegen.errors import ParameterError

    tc = TrainConfig(steps=4, batch=2, warmup=1, eval_every=100, eval_batches=1)
    with pytest.raises(ParameterError, match="no training state"):
        train(tok, corpus, None, tmp_path / "o", model_cfg=_tiny(tok), train_cfg=tc, state_dir=tmp_path / "none",
              resume=True)
    train(tok, corpus, None, tmp_path / "o", model_cfg=_tiny(tok), train_cfg=tc, state_dir=tmp_path / "st")
    wider = ModelConfig(**{**_tiny(tok).to_dict(), "d_model": 48})
    with pytest.raises(ParameterError, match="d_model 32, not 48"):
        train(tok, corpus, None, tmp_path / "o", model_cfg=wider, train_cfg=tc, state_dir=tmp_path / "st",
              resume=True)


def test_script_refuses_resume_without_a_state(tmp_path):
    data, split = _script_data(tmp_path)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_symbolic.py"), "--data", str(data), "--split",
                        str(split), "--out", str(tmp_path / "out"), "--state", str(tmp_path / "empty"), "--resume",
                        "--layers", "1", "--d-model", "32", "--heads", "2", "--context", "64", "--no-bf16"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"Error: --resume: no training state in {str(tmp_path / 'empty')!r}"
    assert "Traceback" not in r.stderr


def test_a_state_cut_mid_swap_still_loads(tok, corpus, tmp_path):
    """Killed between the two renames of a save: the previous state (state.old) is used."""
    from musegen.engines.symbolic.train import TrainConfig, load_state, train

    train(tok, corpus, None, tmp_path / "o", model_cfg=_tiny(tok),
          train_cfg=TrainConfig(steps=3, batch=2, warmup=1, eval_every=100, eval_batches=1), state_dir=tmp_path / "st")
    (tmp_path / "st" / "state").rename(tmp_path / "st" / "state.old")
    meta, tensors = load_state(tmp_path / "st")
    assert meta["next_step"] == 3 and "model.tok.weight" in tensors


def test_ctrl_c_interrupts_a_run_without_state(tok, corpus, tmp_path):
    """Only a resumable run turns SIGINT into "save and stop"; a fine-tune is interrupted as before."""
    import os
    import signal

    from musegen.engines.symbolic.train import TrainConfig, train

    def interrupt(row):
        if row.get("step") == 20:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(tok, corpus, None, tmp_path / "o", model_cfg=_tiny(tok), log=interrupt,
              train_cfg=TrainConfig(steps=200, batch=2, warmup=1, eval_every=1000, eval_batches=1))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_tiny_model_loss_goes_down(tok, corpus, tmp_path):
    from musegen.engines.symbolic.train import TrainConfig, train

    out = train(tok, corpus, corpus, tmp_path / "o",
                model_cfg=ModelConfig(vocab_size=len(tok), n_layer=1, n_head=2, d_model=64, context=128,
                                      dropout=0.0),
                train_cfg=TrainConfig(steps=60, batch=8, lr=3e-3, warmup=5, eval_every=20, eval_batches=2),
                state_dir=tmp_path / "st")
    valid = [r["valid_loss"] for r in out["history"] if "valid_loss" in r]
    assert valid[-1] < valid[0] - 0.5


def _script_data(tmp_path: Path) -> tuple[Path, Path]:
    """A data folder and split file for scripts/train_symbolic.py made of the sample MIDI files."""
    data = tmp_path / "data"
    (data / "midi").mkdir(parents=True)
    rows = [{"id": f"t/{p.stem}", "collection": "t", "style": "pop", "path": str(p)}
            for p in sorted(SAMPLES.glob("*.mid"))]
    (data / "pieces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"pieces": {r["id"]: "train" for r in rows} | {rows[0]["id"]: "valid"}}))
    return data, split


def test_sigterm_saves_the_state_and_resumes(tmp_path):
    """A run killed with SIGTERM leaves a state the next run resumes from (the script's own path)."""
    import signal

    data, split = _script_data(tmp_path)
    cmd = [sys.executable, str(ROOT / "scripts" / "train_symbolic.py"), "--data", str(data), "--split", str(split),
           "--out", str(tmp_path / "out"), "--state", str(tmp_path / "st"), "--layers", "1", "--d-model", "32",
           "--heads", "2", "--context", "64", "--batch", "2", "--steps", "100000", "--minutes", "0",
           "--threads", "1", "--no-bf16", "--eval-every", "1000000", "--save-every", "1000000"]
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:  # wait until it trains
            if '"train_loss"' in line and '"step": 20' in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 0, rest
    meta = json.loads((tmp_path / "st" / "state" / "state.json").read_text())
    assert meta["next_step"] > 20
    assert any(r.get("stopped") == "signal" for r in meta["history"])
    again = subprocess.run(cmd + ["--resume", "--until", str(meta["next_step"] + 3)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    meta2 = json.loads((tmp_path / "st" / "state" / "state.json").read_text())
    assert meta2["next_step"] == meta["next_step"] + 3
    assert meta2["history"][:len(meta["history"])] == meta["history"]


def test_presets_fit_the_issue(tok):
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_symbolic
    from musegen.engines.symbolic.model import MusicTransformer

    for name, shape in train_symbolic.PRESETS.items():
        cfg = ModelConfig(vocab_size=len(build_tokenizer(version=2)), **shape)
        n = MusicTransformer(cfg).num_params()
        assert 5e6 <= n <= 30e6, (name, n)
        assert cfg.context >= 1024


def test_tokenizer_versions_keep_the_shipped_vocabulary():
    shipped = build_tokenizer(WEIGHTS / "tokenizer.json")
    v1, v2 = build_tokenizer(), build_tokenizer(version=2)
    # the shipped tokenizer.json is its version's vocabulary (version 3 keeps version 2's REMI tokens
    # and appends musegen's own after them, in the checkpoint's config, not in tokenizer.json)
    version = int(json.loads((WEIGHTS / "config.json").read_text()).get("tokenizer_version") or 1)
    assert shipped.vocab == {1: v1, 2: v2, 3: v2}[version].vocab
    assert {"drums", "piano", "lieder", "leadsheet"} <= set(model_styles(v2))
    assert model_styles(v2)[:5] == model_styles(v1)
    # the version-1 special tokens keep their ids; the new styles follow them
    for t in v1.special_tokens:
        assert v2.vocab[t] == v1.vocab[t], t
    assert len(v2) == len(v1) + 4


def _card() -> str:
    return (WEIGHTS / "MODEL_CARD.md").read_text()


def _front_matter_sources() -> list[str]:
    from musegen.engines.symbolic.card import _front_matter

    front = _front_matter(str(WEIGHTS / "MODEL_CARD.md"), 0)
    return [s.strip() for s in front["training_sources"].split(",") if s.strip()]


def _card_script():
    """``scripts/write_model_card.py`` as a module (its table of every source's terms)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("write_model_card", ROOT / "scripts" / "write_model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_card_lists_every_training_source():
    """Every collection the shipped weights were trained on is named in the card, with its pieces, and the
    licence the weights report agrees with the terms of those sources (whichever model is shipped)."""
    from musegen.engines.symbolic.card import _front_matter, model_card_info
    from musegen.provenance import commercial_use, run_licence

    config = json.loads((WEIGHTS / "config.json").read_text())
    info = model_card_info(config, WEIGHTS)
    listed = info["training_sources"]
    card = _card()
    front = _front_matter(str(WEIGHTS / "MODEL_CARD.md"), 0)
    pieces = dict(item.rsplit(" ", 1) for item in front["training_pieces"].split(", "))
    # the card's sources account for every training piece the weights' config counts
    assert sorted(pieces) == sorted(listed)
    if config["data"].get("sources"):  # recorded by scripts/train_symbolic.py since tokenizer version 2
        assert sorted(pieces) == sorted(config["data"]["sources"])
    assert sum(int(n) for n in pieces.values()) == config["data"]["train_pieces"]
    # and for every training piece of those collections in the split (assignments never change); an id
    # the corpus holds twice (one work exported from two files) is counted twice, and the card says so
    split = json.loads((ROOT / "scripts" / "data_split.json").read_text())["pieces"]
    twice = dict(item.rsplit(" ", 1) for item in front.get("training_duplicates", "").split(", ") if item)
    assert set(twice) <= set(pieces)
    for name, n in pieces.items():
        in_split = sum(1 for pid, part in split.items() if part == "train" and pid.split("/")[0] == name)
        assert in_split >= int(n) - int(twice.get(name, 0)) > 0, name
        assert re.search(rf"\| `{re.escape(name)}` \| {int(n):,} \|", card), name
    for held in config["data"]["held_out"]:
        assert f"`{held}`" in card
    assert f"d_model {config['model']['d_model']}" in card and f"{config['valid_loss']:.3f}" in card
    assert f"{config['train_tokens']:,} tokens" in card
    # the licence every result records: non-commercial exactly when a source's terms forbid commercial use
    terms = _card_script().SOURCES
    assert not terms["essenFolksong"]["commercial"] and not terms["palestrina"]["commercial"]
    closed = [name for name in listed if not terms[name]["commercial"]]
    licence = run_licence("symbolic", {})["licence"]
    if closed:
        assert commercial_use(licence) is False, licence
        assert "non-commercial" in card and all(f"`{name}`" in card for name in closed)
    else:
        assert commercial_use(licence) is True, licence  # --commercial-use runs it
        assert "non-commercial" not in front.get("license", "")


@pytest.fixture(scope="module")
def card_checkpoint(tmp_path_factory) -> Path:
    """A tiny version-3 checkpoint trained on sample files named as two real sources, with its corpus."""
    from musegen.engines.symbolic.layout import Layout
    from musegen.engines.symbolic.train import TrainConfig, train

    tok2 = build_tokenizer(version=2)
    items = [(f"{'groove' if 'drum' in p.stem else 'pop909'}/{p.stem}", str(p), "drums" if "drum" in p.stem else "pop")
             for p in sorted(SAMPLES.glob("*.mid"))]
    corpus = build_corpus(tok2, items, log=None)
    root = tmp_path_factory.mktemp("card")
    (root / "data").mkdir()
    corpus.save(root / "data" / "tokens_v2_train.npz")
    sources = sorted({name.split("/")[0] for name in corpus.names})
    assert sources == ["groove", "pop909"]
    layout = Layout(tok2)
    meta = {"data": {"train_pieces": len(corpus), "train_tokens": len(corpus.ids), "valid_pieces": len(corpus),
                     "sources": sources, "held_out": ["monteverdi"]}, "tokenizer_version": 3}
    train(tok2, corpus, corpus, root / "model", layout=layout, meta=meta,
          model_cfg=ModelConfig(vocab_size=layout.vocab_size, n_layer=1, n_head=2, d_model=32, context=128,
                                dropout=0.0),
          train_cfg=TrainConfig(steps=6, batch=2, lr=3e-3, warmup=1, eval_every=3, eval_batches=1))
    return root


def _write_card(folder: Path, data: Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "write_model_card.py"), str(folder),
                           "--data", str(data), *map(str, extra)], capture_output=True, text=True, timeout=300,
                          check=False)


def test_write_model_card_names_every_source_of_its_checkpoint(card_checkpoint, tmp_path):
    """The card script writes a card that names each source of the config with its pieces, parses as
    the engine reads it, carries the --eval lines, and is the same file when written again."""
    from musegen.engines.symbolic.card import _front_matter
    from musegen.engines.symbolic.data import TokenCorpus
    from musegen.provenance import commercial_use

    folder, data = card_checkpoint / "model", card_checkpoint / "data"
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"test NLL": ["0.80 nats/token on 551 test pieces"]}))
    r = _write_card(folder, data, "--eval", evaluation)
    assert r.returncode == 0, r.stderr
    path = folder / "MODEL_CARD.md"
    assert r.stdout.strip() == str(path)
    text = path.read_text()
    config = json.loads((folder / "config.json").read_text())
    front = _front_matter(str(path), path.stat().st_mtime_ns)
    assert front["id"] == "musegen-symbolic-v3-d32"
    assert [s.strip() for s in front["training_sources"].split(",")] == config["data"]["sources"]
    pieces = dict(item.rsplit(" ", 1) for item in front["training_pieces"].split(", "))
    names = TokenCorpus.load(data / "tokens_v2_train.npz").names
    for source in config["data"]["sources"]:
        n = sum(1 for name in names if name.split("/")[0] == source)
        assert n and pieces[source] == str(n)
        assert re.search(rf"\| `{source}` \| {n:,} \|", text), source
    # MIT POP909 and CC BY Groove: free for commercial use, as --commercial-use reads the card
    assert front["license"] == "mit" and commercial_use(front["license"]) is True
    assert f"d_model {config['model']['d_model']}" in text and f"{config['valid_loss']:.3f}" in text
    assert f"{config['train_tokens']:,} tokens" in text and "`monteverdi`" in text
    assert f"{config['model']['vocab_size']} tokens: miditok REMI {config['model']['vocab_size'] - 50}" in text
    assert "0.80 nats/token on 551 test pieces" in text.split("## Evaluation", 1)[1]
    assert _write_card(folder, data, "--eval", evaluation).returncode == 0
    assert path.read_text() == text


def test_write_model_card_licence_follows_the_sources(card_checkpoint, tmp_path):
    """A non-commercial source makes the card's licence non-commercial; a source without known terms
    is refused by name, leaving no card."""
    import dataclasses
    import shutil

    from musegen.engines.symbolic.card import _front_matter
    from musegen.engines.symbolic.data import TokenCorpus
    from musegen.provenance import commercial_use

    corpus = TokenCorpus.load(card_checkpoint / "data" / "tokens_v2_train.npz")

    def checkpoint(rename: str, new: str) -> tuple[Path, Path]:
        folder, data = tmp_path / new / "model", tmp_path / new / "data"
        shutil.copytree(card_checkpoint / "model", folder)
        (folder / "MODEL_CARD.md").unlink(missing_ok=True)
        data.mkdir()
        names = [f"{new}/{n.split('/', 1)[1]}" if n.startswith(rename + "/") else n for n in corpus.names]
        dataclasses.replace(corpus, names=names).save(data / "tokens_v2_train.npz")
        config = json.loads((folder / "config.json").read_text())
        config["data"]["sources"] = sorted({n.split("/")[0] for n in names})
        (folder / "config.json").write_text(json.dumps(config))
        return folder, data

    folder, data = checkpoint("pop909", "essenFolksong")
    r = _write_card(folder, data)
    assert r.returncode == 0, r.stderr
    front = _front_matter(str(folder / "MODEL_CARD.md"), 1)
    assert front["license"] == "non-commercial" and commercial_use(front["license"]) is False
    assert "`essenFolksong` is not free for commercial use" in (folder / "MODEL_CARD.md").read_text()

    folder, data = checkpoint("pop909", "mystery")
    r = _write_card(folder, data)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("Error: ") and "'mystery'" in r.stderr
    assert not (folder / "MODEL_CARD.md").exists() and not list(folder.glob("*.part"))


def test_readme_links_the_card():
    assert "src/musegen/engines/symbolic/weights/MODEL_CARD.md" in (ROOT / "README.md").read_text()


def test_sidecar_records_the_model_card(cli, tmp_path):
    """A symbolic result's sidecar names the model card and the sources the weights learned from."""
    r = cli("generate", "--engine", "symbolic", "--bars", "1", "--seed", "2", "-o", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    side = next(json.loads(Path(line).read_text()) for line in r.stdout.splitlines() if line.endswith(".json"))
    info = side["engine"]["info"]
    assert info["model_card"].endswith("weights/MODEL_CARD.md")
    assert info["model_card_id"].startswith("musegen-symbolic")
    listed = _front_matter_sources()
    assert "pop909" in listed and info["training_sources"] == listed


def test_init_goes_on_from_a_checkpoints_weights(tmp_path):
    """``--init DIR`` starts from a saved checkpoint (a new machine keeps no --state): its first
    losses are the checkpoint's, far below a fresh model's; a shape given beside it is refused."""
    data, split = _script_data(tmp_path)
    base = [sys.executable, str(ROOT / "scripts" / "train_symbolic.py"), "--data", str(data), "--split", str(split),
            "--batch", "2", "--minutes", "0", "--threads", "1", "--no-bf16", "--eval-every", "1000000",
            "--warmup", "5"]
    shape = ["--layers", "1", "--d-model", "32", "--heads", "2", "--context", "64", "--tokenizer-version", "3"]
    first = subprocess.run(base + shape + ["--out", str(tmp_path / "a"), "--steps", "60", "--lr", "3e-3"],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(base + ["--init", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--steps", "3",
                                   "--lr", "1e-6"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr

    def losses(folder: Path) -> list[float]:
        rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
        return [r["train_loss"] for r in rows if "train_loss" in r]

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert b[0] < a[0] - 1.0, (a[:3], a[-3:], b)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"] == \
        json.loads((tmp_path / "a" / "config.json").read_text())["model"]
    refused = subprocess.run(base + ["--init", str(tmp_path / "a"), "--layers", "2", "--out", str(tmp_path / "c")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--init" in refused.stderr and "Traceback" not in refused.stderr
