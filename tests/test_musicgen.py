"""The ``musicgen`` engine on tiny random-weight models (nothing is ever downloaded).

A session fixture builds a tiny MusicGen and a tiny MusicGen-Melody with the
real layout (32 kHz EnCodec, 4 codebooks, T5 text encoder, a tokenizer trained
offline) and saves them like hub checkpoints; the CLI tests then run the real
loading and generation path in subprocesses with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musegen.engines.batching import generate_batched

pytest.importorskip("transformers")
pytest.importorskip("torch")

from conftest import make_sketch  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"  # in-process tests too: no hub, ever

FPS = 50  # frames per second of the 32 kHz models
SR = 32000
HOP = 640


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory) -> Path:
    """An empty Hugging Face cache, so that no real cache is ever consulted."""
    return tmp_path_factory.mktemp("hf-home")


@pytest.fixture(scope="session", autouse=True)
def extensions_dir(tmp_path_factory):
    """An empty torch extensions cache for every test here (kernels=auto builds native in process
    too): kernels=native is built from scratch once per session, never into the user's cache."""
    path = tmp_path_factory.mktemp("torch-extensions")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_EXTENSIONS_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def env(hub_cache, extensions_dir) -> dict:
    # one thread: tiny models are fastest on one, and tests share the machine
    return {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hub_cache), "HF_HUB_CACHE": str(hub_cache / "hub"),
            "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error", "TORCH_EXTENSIONS_DIR": str(extensions_dir)}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    from musegen.engines.musicgen.testing import make_model_dir

    root = tmp_path_factory.mktemp("musicgen-models")
    return {"text": make_model_dir(root / "tiny-musicgen", "tiny"),
            "melody": make_model_dir(root / "tiny-musicgen-melody", "tiny", melody=True)}


@pytest.fixture(scope="session")
def loaded(models):
    """In-process models (one thread) for token-level tests."""
    import torch

    from musegen.engines.musicgen.model import MusicGenModel
    from musegen.engines.musicgen.resolve import resolve_model

    torch.set_num_threads(1)
    return {k: MusicGenModel.load(resolve_model(p)) for k, p in models.items()}


def run(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "musegen", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


def generate(env, model, out, *args):
    proc = run(env, "generate", "--engine", "musicgen", "--model", model, "-o", out, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]


def read_wav(path):
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.T, sr


def sidecar(result) -> dict:
    return json.loads(Path(result["json"]).read_text())


# -- the CLI, end to end ---------------------------------------------------------------------

BASE = ["--preset", "lofi-chill", "--seconds", "3", "--seed", "7", "--no-post", "--variations", "3",
        "--option", "batch_size=2"]


@pytest.fixture(scope="module")
def base_run(models, env, tmp_path_factory):
    """Three variations in two batches, generated once for several tests."""
    return generate(env, models["text"], tmp_path_factory.mktemp("base"), *BASE)


def wav_digests(results) -> list[str]:
    return [hashlib.sha256(Path(r["wav"]).read_bytes()).hexdigest() for r in results]


def test_generate_writes_results_of_the_right_length(base_run):
    assert len(base_run) == 3
    doc = sidecar(base_run[0])
    music_s = doc["analysis"]["music_s"]  # --seconds rounds up to whole bars
    assert music_s >= 3.0
    for r in base_run:
        y, sr = read_wav(r["wav"])
        assert sr == 44100 and y.shape[0] == 2
        assert abs(y.shape[1] / sr - 3.0) < 1e-3  # the engine's whole bars, cut to --seconds
        assert r["mid"] is None  # no seed, no transcription: no MIDI
    info = doc["engine"]["info"]
    assert info["model_kind"] == "text" and info["decoder"] == "fast"
    assert info["kernels"] == "native"  # kernels=auto on the CPU in float32
    assert info["frames"] == math.ceil(music_s * FPS - 1e-9)
    assert doc["parameters"]["prompt"].startswith("A mellow lo-fi")  # the preset's description
    assert len(set(wav_digests(base_run))) == 3  # variations differ


def test_same_seed_same_audio_and_stock_decoder_agrees(base_run, models, env, tmp_path):
    again = generate(env, models["text"], tmp_path / "again", *BASE)
    assert wav_digests(again) == wav_digests(base_run)
    # transformers' generate() samples the same tokens as the exact kernels (bit-identical logits;
    # the default native ones differ by ~1e-6, enough to move a draw that lands on a boundary)
    exact = generate(env, models["text"], tmp_path / "exact", *BASE, "--option", "kernels=exact")
    stock = generate(env, models["text"], tmp_path / "stock", *BASE, "--option", "decoder=stock")
    for f, s in zip(exact, stock):
        np.testing.assert_array_equal(read_wav(f["wav"])[0], read_wav(s["wav"])[0])


def test_post_chain_runs_on_musicgen_audio(models, env, tmp_path):
    (r,) = generate(env, models["text"], tmp_path, "--preset", "lofi-chill", "--seconds", "4", "--seed", "1",
                    "--option", "kernels=native")
    doc = sidecar(r)
    assert doc["engine"]["info"]["kernels"] == "native"
    assert [s["op"] for s in doc["parameters"]["post"]] == ["trim", "lowpass", "reverb", "loudness"]
    assert doc["analysis"]["peak_dbfs"] <= -0.9  # the loudness step's peak ceiling


def test_long_form_windows_and_length(models, env, tmp_path):
    (r,) = generate(env, models["text"], tmp_path, "--preset", "techno", "--seconds", "9", "--seed", "2",
                    "--no-post", "--tempo", "120", "--option", "window=4", "--option", "extend_stride=2.5",
                    "--option", "decode_chunk=3", "--option", "kernels=fused")
    doc = sidecar(r)
    info = doc["engine"]["info"]
    assert info["kernels"] == "fused"
    total = info["frames"]
    windows = info["windows"]
    assert len(windows) > 2
    have = 0
    for start, prompt, new in windows:
        assert start + prompt == have and prompt + new <= 200  # consecutive, each within the window
        assert prompt == (0 if have == 0 else min(have, 200 - 125))
        have += new
    assert have == total == 10 * FPS  # 5 bars of 4/4 at 120 BPM
    y, sr = read_wav(r["wav"])
    assert abs(y.shape[1] / sr - 9.0) < 1e-3  # cut to --seconds


def test_melody_model_follows_a_midi_seed(models, env, tmp_path):
    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=2)
    (r,) = generate(env, models["melody"], tmp_path / "out", "--midi", sketch, "--seconds", "2", "--seed", "5",
                    "--no-post", "--preset", "pop-ballad")
    doc = sidecar(r)
    info = doc["engine"]["info"]
    assert info["model_kind"] == "melody" and info["midi_mode"] == "melody"
    assert info["chroma"]["frames"] == 1 + (4 * SR) // 4096  # the 4 s seed in the extractor's layout
    assert info["chroma"]["tracks"] == [0]  # the bass line is left out, as MusicGen-Melody's stems were
    y, sr = read_wav(r["wav"])
    assert abs(y.shape[1] / sr - doc["analysis"]["music_s"]) < 1e-3
    assert abs(doc["analysis"]["music_s"] - 6.0) < 1e-6  # the seed's 2 bars (4 s), then 1 new bar
    from symusic import Score

    out, seed = Score(r["mid"]), Score(str(sketch))
    assert [len(t.notes) for t in out.tracks] == [len(t.notes) for t in seed.tracks]


def test_audio_prompt_is_continued(models, env, tmp_path):
    import soundfile as sf

    t = np.arange(int(1.5 * 44100)) / 44100
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100)
    (r,) = generate(env, models["text"], tmp_path / "out", "--audio-prompt", clip, "--seconds", "2", "--seed", "1",
                    "--no-post", "--preset", "techno", "--tempo", "120")
    info = sidecar(r)["engine"]["info"]
    assert info["audio_prompt_s"] == 1.5
    import hashlib

    assert info["audio_prompt_sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert "ignored_inputs" not in info  # musicgen uses the clip
    prompt_frames = math.ceil(1.5 * FPS)
    assert info["windows"][0][:2] == [0, prompt_frames]
    y, sr = read_wav(r["wav"])
    assert abs(y.shape[1] / sr - (prompt_frames * HOP / SR + 2.0)) < 1e-3


def test_text_model_continues_a_rendered_midi_seed(models, env, tmp_path):
    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=1)
    (r,) = generate(env, models["text"], tmp_path / "out", "--midi", sketch, "--seconds", "2", "--seed", "1",
                    "--no-post")
    info = sidecar(r)["engine"]["info"]
    assert info["midi_mode"] == "prompt" and info["seed_prompt_s"] == 2.0
    assert info["windows"][0][:2] == [0, 2 * FPS]
    assert r["mid"] is not None


def _silent_soundfont(path: Path) -> Path:
    """The bundled SoundFont with its sample data zeroed: valid, and every note silent."""
    from musegen.render import default_soundfont

    data = bytearray(default_soundfont().read_bytes())
    at = data.index(b"smpl", data.index(b"sdta"))
    size = int.from_bytes(data[at + 4:at + 8], "little")
    data[at + 8:at + 8 + size] = bytes(size)
    path.write_bytes(bytes(data))
    return path


def test_a_rendered_midi_seed_prompt_uses_the_requested_soundfont(models, tmp_path):
    """--soundfont reaches the seed MusicGen continues: a silent font gives a silent prompt, the bundled
    one an audible one.  (The tiny model's codec hears no difference at these levels, so the prompt's own
    level, recorded in the sidecar, is what is compared.)"""
    from musegen.pipeline import generate as run_pipeline
    from musegen.render import default_soundfont

    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=1)
    silent = _silent_soundfont(tmp_path / "silent.sf2")
    info = {}
    for name, font in (("default", None), ("silent", silent)):
        (r,) = run_pipeline("pop-ballad", midi=sketch, seconds=1, seed=1, engine="musicgen", soundfont=font,
                            out_dir=tmp_path / name, post=[],
                            engine_options={"model": str(models["text"]), "threads": 1})
        info[name] = r.sidecar["engine"]["info"]
        assert info[name]["midi_mode"] == "prompt"
    assert info["default"]["seed_prompt_soundfont"] == str(default_soundfont())
    assert info["silent"]["seed_prompt_soundfont"] == str(silent)
    assert info["default"]["seed_prompt_peak_dbfs"] > -40
    assert info["silent"]["seed_prompt_peak_dbfs"] == -120


def test_missing_model_is_one_clear_error(env, tmp_path):
    t0 = time.perf_counter()
    proc = run(env, "generate", "--engine", "musicgen", "--model", "facebook/musicgen-small", "--seconds", "2",
               "-o", tmp_path)
    assert time.perf_counter() - t0 < 60  # fails at once: no network wait
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "facebook/musicgen-small" in lines[0] and "hf download facebook/musicgen-small" in lines[0]
    assert "Traceback" not in proc.stderr
    proc = run(env, "generate", "--engine", "musicgen", "--model", tmp_path / "nope", "--seconds", "2",
               "-o", tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not found" in proc.stderr
    assert not list(tmp_path.glob("*.wav"))


def test_bad_options_are_named(models, env, tmp_path):
    proc = run(env, "generate", "--engine", "musicgen", "--model", models["text"], "--seconds", "2", "-o", tmp_path,
               "--option", "guidence=3")
    assert proc.returncode == 2 and "guidence" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(env, "generate", "--engine", "musicgen", "--model", models["text"], "--seconds", "2", "-o", tmp_path,
               "--option", "kernels=onednn")
    assert proc.returncode == 2 and "'onednn'" in proc.stderr and "Traceback" not in proc.stderr
    sketch = make_sketch(tmp_path / "s.mid")
    proc = run(env, "generate", "--engine", "musicgen", "--model", models["text"], "--seconds", "2", "-o", tmp_path,
               "--midi", sketch, "--option", "midi_mode=melody")
    assert proc.returncode == 2 and "MusicGen-Melody" in proc.stderr


def test_transcription_without_basic_pitch_says_how_to_install(models, env, tmp_path):
    import importlib.util

    if importlib.util.find_spec("basic_pitch") is not None:
        pytest.skip("basic-pitch is installed here")
    proc = run(env, "generate", "--engine", "musicgen", "--model", models["text"], "--seconds", "2", "-o", tmp_path,
               "--option", "transcribe=true")
    assert proc.returncode == 1 and "pip install --no-deps basic-pitch" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_listing_engines_imports_no_torch():
    code = ("import sys; from musegen.engines.registry import available_engines; "
            "assert 'musicgen' in available_engines(); "
            "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- tokens and logits, in process ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["text", "melody"])
@pytest.mark.parametrize("guidance,batch,prompt", [(3.0, 1, 0), (3.0, 2, 12), (1.0, 2, 0)])
def test_fast_decoder_samples_the_stock_tokens(loaded, kind, guidance, batch, prompt):
    import torch

    from musegen.engines.musicgen.fast import Sampling
    from musegen.engines.musicgen.model import Plan

    mg = loaded[kind]
    texts = ["dusty lofi beat", "epic brass and strings"][:batch]
    codes = torch.randint(0, 64, (1, 4, prompt), generator=torch.Generator().manual_seed(0)) if prompt else None
    chroma = np.eye(12, dtype=np.float32)[np.arange(30) % 12] if kind == "melody" else None
    plan = Plan(texts=texts, total_frames=prompt + 40, prompt=codes, chroma=chroma)
    s = Sampling(guidance_scale=guidance, top_k=20, temperature=1.2)
    fast = mg.generate(plan, sampling=s, generator=torch.Generator().manual_seed(11))
    with torch.random.fork_rng():
        torch.manual_seed(11)
        stock = mg.generate(plan, sampling=s, decoder="stock")
    assert fast.shape == (batch, 4, prompt + 40)
    assert torch.equal(fast, stock)
    if prompt:
        assert torch.equal(fast[:, :, :prompt], codes.expand(batch, -1, -1))


def test_fused_kernels_agree_with_the_exact_ones(loaded):
    import torch

    from musegen.engines.musicgen.fast import FastDecoder

    mg = loaded["text"]
    cond = mg.conditioning(["warm jazz", "dark techno"], guided=True)  # 4 rows: the oneDNN path
    exact = FastDecoder(mg.lm).first_logits(cond, batch=2, guided=True)
    fused = FastDecoder(mg.lm, kernels="fused").first_logits(cond, batch=2, guided=True)
    assert exact.shape == fused.shape == (4, 4, 64)
    torch.testing.assert_close(fused, exact, rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="kernels must be one of"):
        FastDecoder(mg.lm, kernels="fastest")


def test_fused_kernels_fuse_qkv_and_heads_only_where_they_pack(loaded):
    import torch

    from musegen.engines.musicgen.fast import FastDecoder

    mg = loaded["text"]
    fd = FastDecoder(mg.lm, kernels="fused")
    fd.first_logits(mg.conditioning(["warm jazz"], guided=True), batch=1, guided=True)  # 2 rows: F.linear
    assert not fd._fused
    fd.first_logits(mg.conditioning(["warm jazz", "dark techno"], guided=True), batch=2, guided=True)
    assert set(fd._fused) == {*range(len(fd.layers)), "heads"}
    sa = fd.layers[0].self_attn
    assert torch.equal(fd._fused[0][0], torch.cat([sa.q_proj.weight, sa.k_proj.weight, sa.v_proj.weight]))
    fd.kernels = "exact"  # the copies go with the packed weights
    assert not fd._fused and not fd._packed


@pytest.mark.parametrize("texts,folded", [(["warm jazz"], True), (["a", "warm"], True),
                                          (["a long prompt about lofi beats with mellow rhodes chords"], False)])
def test_fused_kernels_fold_the_cross_attention_of_short_texts(loaded, texts, folded):
    import torch

    from musegen.engines.musicgen.fast import FastDecoder, Sampling

    mg = loaded["text"]
    cond = mg.conditioning(texts, guided=True)
    fd = FastDecoder(mg.lm, kernels="fused")
    with torch.inference_mode():
        plan = fd._cross_plan(cond)
    # the unconditional rows (zero text states) attend alike whatever the query: computed once
    assert plan.live == len(texts) and len(plan.const) == len(fd.layers)
    assert (plan.folded is not None) == folded
    if len(texts) == 2:  # texts of different lengths: the folded scores keep the padding mask
        assert plan.live_add is not None and bool(torch.isinf(plan.live_add).any())
    exact = FastDecoder(mg.lm)
    torch.testing.assert_close(fd.first_logits(cond, batch=len(texts), guided=True),
                               exact.first_logits(cond, batch=len(texts), guided=True), rtol=1e-4, atol=1e-5)
    s = Sampling(guidance_scale=3.0, top_k=20)
    a = exact.generate(cond, batch=len(texts), new_frames=30, sampling=s, generator=torch.Generator().manual_seed(3))
    b = fd.generate(cond, batch=len(texts), new_frames=30, sampling=s, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["text", "melody"])
@pytest.mark.parametrize("texts,guidance,folded", [
    (["warm jazz"], 3.0, True), (["a", "warm"], 1.0, True), (["a", "warm"], 3.0, True),
    (["lofi beats with mellow rhodes chords", "dark techno"], 3.0, False),  # padded texts
    (["a", "warm", "dark techno", "lofi"], 3.0, False),  # 8 rows
    (["a", "warm", "dark techno"], 1.0, False),  # 3 rows, no guidance
])
def test_native_kernels_step_like_the_exact_ones(loaded, extensions_dir, kind, texts, guidance, folded):
    import torch

    from musegen.engines.musicgen.fast import FastDecoder, Sampling

    mg = loaded[kind]
    guided = guidance > 1
    cond = mg.conditioning(texts, guided=guided)
    nat = FastDecoder(mg.lm, kernels="native")
    used = []
    build = nat._native_step
    nat._native_step = lambda *a: used.append(build(*a)) or used[-1]
    s = Sampling(guidance_scale=guidance, top_k=20)
    exact = FastDecoder(mg.lm).generate(cond, batch=len(texts), new_frames=40, sampling=s,
                                        generator=torch.Generator().manual_seed(5))
    native = nat.generate(cond, batch=len(texts), new_frames=40, sampling=s, generator=torch.Generator().manual_seed(5))
    assert used and used[0] is not None  # the compiled step ran (built in this session's empty cache)
    if kind == "text":  # short texts run the folded cross-attention, long ones the q and out products
        with torch.inference_mode():
            assert (nat._cross_plan(cond).folded is not None) == folded
    assert torch.equal(native, exact)
    # one step's logits against the Python loop's, from the same cache
    rows = cond.rows
    with torch.inference_mode():
        cross = nat._cross_plan(cond)
        keys, values = nat._caches(rows, 64, nat.positions.weights)
        pattern, start, _ = nat._pattern(len(texts), 40, None)
        nat._prompt_pass(cond, pattern[:, :start], len(texts), guided, keys, values, cross)
        pos = (0 if cond.prefix is None else cond.prefix.shape[1]) + start
        x = torch.randn(rows, 1, nat.hidden, generator=torch.Generator().manual_seed(0))
        ref = nat._forward(x, pos, [k.clone() for k in keys], [v.clone() for v in values], cross)
        got = build(cross, rows, keys, values).step(x, pos)
    torch.testing.assert_close(got, ref.reshape(rows, nat.K, -1), rtol=1e-4, atol=1e-5)


def test_native_kernels_without_a_compiler_say_what_to_install(monkeypatch, tmp_path):
    from musegen.engines.musicgen import native
    from musegen.errors import EngineError

    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_reason", None)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(EngineError, match="could not build its compiled step .no C.. compiler: .*no-such-compiler"
                                          ".*ninja.*kernels=fused"):
        native.load()
    assert "no-such-compiler" in native.failure_reason()
    import torch.utils.cpp_extension

    tries = []
    monkeypatch.delenv("CXX")  # a retry would now get as far as the builder
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda *a, **k: tries.append(a))
    with pytest.raises(EngineError, match="kernels=native could not build"):  # remembered, not retried
        native.load()
    assert not tries


def test_auto_kernels_fall_back_to_fused_without_a_compiler_and_say_so(models, env, tmp_path):
    """The default kernels=auto says it is building, and decodes with fused when the build fails."""
    env = {**env, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "CXX": str(tmp_path / "no-such-compiler")}
    args = ["--engine", "musicgen", "--model", models["text"], "--preset", "lofi-chill", "--seconds", "1"]
    proc = run(env, "generate", *args, "-o", tmp_path / "out", "--seed", "3", "--no-post", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "musicgen: building the compiled decoding step (kernels=native)" in proc.stderr
    assert "kernels=native is unavailable here (no C++ compiler" in proc.stderr
    assert "decoding with kernels=fused" in proc.stderr and "Traceback" not in proc.stderr
    (r,) = json.loads(proc.stdout)["results"]
    assert sidecar(r)["engine"]["info"]["kernels"] == "fused"
    # asked for by name, it must build
    proc = run(env, "generate", *args, "-o", tmp_path / "named", "--option", "kernels=native")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: kernels=native could not build")
    assert not (tmp_path / "named").exists() or not any((tmp_path / "named").iterdir())


def test_a_failed_compile_is_named_by_the_compilers_error(monkeypatch, tmp_path):
    """A real compile that fails: the one-line reason is the compiler's error, not ninja's command line."""
    from musegen.engines.musicgen import native
    from musegen.errors import EngineError

    broken = tmp_path / "step.cpp"
    broken.write_text("#include <no_such_header_here.h>\n")
    monkeypatch.setattr(native, "_SOURCE", broken)
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setattr(native, "_reason", None)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    with pytest.raises(EngineError, match=r"\(.*no_such_header_here\.h: No such file or directory\)"):
        native.load()
    assert "-DTORCH_EXTENSION_NAME" not in native.failure_reason()


def test_native_builds_vector_products_per_kind_of_cpu(extensions_dir):
    """Built for this CPU (x86 with AVX2 or AVX-512 here), in a folder of its own per kind of CPU, so a
    home folder shared by a cluster's machines never hands one machine another's instructions."""
    from musegen.engines.musicgen import native

    assert native.load().simd() in ("avx2", "avx512")
    where = native._build_directory()
    assert where.parent == extensions_dir / "musegen"
    assert re.fullmatch(r"py\d+-torch[\w.-]+-cpu[0-9a-f]{8}-src[0-9a-f]{10}", where.name), where.name
    assert native.cached() and list(where.glob("musegen_native_step*.so"))


def test_the_build_folder_is_keyed_by_the_source_and_the_flags(monkeypatch, tmp_path):
    """Installs sharing one cache with another step.cpp or other flags get a folder each (no rebuilds
    of each other's step); the same source from another install's path shares the folder."""
    from musegen.engines.musicgen import native

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    here = native._build_directory()
    elsewhere = tmp_path / "other-install" / "step.cpp"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(native._SOURCE.read_bytes())
    monkeypatch.setattr(native, "_SOURCE", elsewhere)
    assert native._build_directory() == here  # same bytes, another path: the same build
    elsewhere.write_bytes(native._SOURCE.read_bytes() + b"\n// edited\n")
    edited = native._build_directory()
    assert edited != here and edited.parent == here.parent
    monkeypatch.setattr(native, "_CFLAGS", (*native._CFLAGS, "-DMUSEGEN_OTHER"))
    assert native._build_directory() not in (here, edited)


def test_every_build_that_starts_says_so(monkeypatch, tmp_path):
    """The message comes from the function that starts the build (no compile here: there is no compiler),
    on every start, not only where a guess said the cache was empty."""
    import logging

    from musegen.engines.musicgen import native
    from musegen.errors import EngineError

    said: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: said.append(record.getMessage())
    monkeypatch.setattr(native.log, "level", logging.INFO)
    native.log.addHandler(handler)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    try:
        for _ in range(2):
            monkeypatch.setattr(native, "_module", None)
            monkeypatch.setattr(native, "_reason", None)
            said.clear()
            with pytest.raises(EngineError):
                native.load()
            (line,) = [m for m in said if "building the compiled decoding step" in m]
            assert str(native._build_directory()) in line
    finally:
        native.log.removeHandler(handler)


def test_a_killed_builds_lock_is_cleared_and_a_live_one_kept(tmp_path):
    """torch's builder waits forever on a lock file; one left by a killed build must not hang every run."""
    import time

    from musegen.engines.musicgen import native

    lock = tmp_path / "lock"
    lock.touch()
    native._clear_stale_lock(lock)
    assert lock.exists()  # a build in progress: wait for it
    old = time.time() - native.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    native._clear_stale_lock(lock)
    assert not lock.exists()
    native._clear_stale_lock(lock)  # and none at all is fine


def test_the_seed_changes_the_tokens(loaded):
    import torch

    from musegen.engines.musicgen.fast import Sampling
    from musegen.engines.musicgen.model import Plan

    mg = loaded["text"]
    plan = Plan(texts=["calm"], total_frames=30)
    a, b = (mg.generate(plan, sampling=Sampling(), generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    assert not torch.equal(a, b)


def test_conditioning_shows_in_the_logits(loaded):
    mg = loaded["text"]
    a = mg.fast.first_logits(mg.conditioning(["calm ambient pads"], guided=True), batch=1, guided=True)
    b = mg.fast.first_logits(mg.conditioning(["fast techno drums"], guided=True), batch=1, guided=True)
    assert (a[0] - b[0]).abs().max() > 1e-5  # the text moves the conditional logits
    assert (a[1] - b[1]).abs().max() == 0  # the unconditional half ignores it

    mel = loaded["melody"]
    c_major = np.eye(12, dtype=np.float32)[[0, 4, 7] * 10]
    f_sharp = np.eye(12, dtype=np.float32)[[6, 10, 1] * 10]
    x = mel.fast.first_logits(mel.conditioning(["piano"], guided=True, chroma=c_major), batch=1, guided=True)
    y = mel.fast.first_logits(mel.conditioning(["piano"], guided=True, chroma=f_sharp), batch=1, guided=True)
    assert (x[0] - y[0]).abs().max() > 1e-5  # the melody moves them
    assert (x[1] - y[1]).abs().max() == 0


def test_chunked_decoding_has_no_clicks(loaded):
    import torch

    mg = loaded["text"]
    codes = torch.randint(0, 64, (1, 4, 400), generator=torch.Generator().manual_seed(3))
    whole = mg.decode(codes)[0, 0]
    chunked = mg.decode_long(codes, chunk_s=2.0, overlap_s=0.4)[0, 0]
    assert chunked.shape == whole.shape == (400 * HOP,)
    # pieces decoded with context agree with the whole, so the crossfades join equal audio
    assert np.corrcoef(whole, chunked)[0, 1] > 0.99
    step = np.abs(np.diff(whole)).max()
    for seam in range(80, 400, 80):  # every chunk boundary region
        region = chunked[(seam - 20) * HOP:(seam + 20) * HOP]
        assert np.abs(np.diff(region)).max() <= 1.2 * step


# -- pure pieces --------------------------------------------------------------------------

def test_window_plan_mirrors_the_extend_stride():
    from musegen.engines.musicgen.longform import plan_windows

    w = plan_windows(4000, window=1500, stride=900)
    # AudioCraft's windows for 80 s at 30 s / 18 s: starts 0, 18, 36, 54 s; the last one 26 s long
    assert [(x.start, x.prompt, x.new) for x in w] == [(0, 0, 1500), (900, 600, 900), (1800, 600, 900),
                                                        (2700, 600, 700)]
    w = plan_windows(800, window=1500, stride=900, prompt=300)
    assert [(x.start, x.prompt, x.new) for x in w] == [(0, 300, 500)]
    assert plan_windows(300, window=1500, stride=900, prompt=300) == []


def test_crossfade_keeps_a_constant_constant():
    from musegen.engines.musicgen.longform import crossfade_join, fade_curves

    out_w, in_w = fade_curves(97)
    np.testing.assert_allclose(out_w + in_w, 1.0, atol=1e-6)
    y = crossfade_join(np.full((2, 500), 0.5, np.float32), np.full((2, 400), 0.5, np.float32), overlap=100)
    assert y.shape == (2, 800)
    np.testing.assert_allclose(y, 0.5, atol=1e-6)


def test_chroma_from_midi_has_the_model_layout_and_pitch_classes(tmp_path):
    from symusic import Note, Score, Tempo, Track

    from musegen.engines.musicgen.chroma import ChromaLayout, chroma_from_score, select_tracks
    from musegen.midi.analysis import analyze_score

    layout = ChromaLayout()
    s = Score(480)
    s.tempos.append(Tempo(0, 120.0))
    mel = Track(name="melody", program=0)
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]  # one second each at 120 BPM
    for i, p in enumerate(pitches):
        mel.notes.append(Note(i * 960, 960, p, 100))
    bass = Track(name="bass", program=33)
    for i in range(8):
        bass.notes.append(Note(i * 960, 960, 31, 127))  # a loud low G under everything
    s.tracks.extend([mel, bass])
    a = analyze_score(s)
    tracks = select_tracks(s, parts="melodic", roles=[t.role for t in a.tracks])
    assert tracks == [0]
    chroma = chroma_from_score(s, duration_s=8.0, layout=layout, tracks=tracks)
    assert chroma.shape == (1 + 8 * SR // 4096, 12) and chroma.dtype == np.float32
    assert np.all(chroma.sum(axis=1) == 1)  # one-hot frames, like the feature extractor's
    times = layout.frame_times(len(chroma))
    for j, t in enumerate(times):
        if t % 1.0 < 0.3 or t % 1.0 > 0.7 or t >= 8:  # frames whose window straddles two notes
            continue
        assert chroma[j].argmax() == pitches[int(t)] % 12, (j, t)
    assert select_tracks(s, parts="all", roles=[t.role for t in a.tracks]) == [0, 1]
    # the filter bank's octave weighting keeps a loud low bass from swamping the melody
    everything = chroma_from_score(s, duration_s=8.0, layout=layout, tracks=[0, 1])
    assert (everything.argmax(axis=1) == chroma.argmax(axis=1)).mean() > 0.9


def test_chroma_from_audio_agrees_with_chroma_from_notes():
    from symusic import Note, Score, Tempo, Track

    from musegen.engines.musicgen.chroma import ChromaLayout, chroma_from_audio, chroma_from_score
    from musegen.render.synth import render_score

    layout = ChromaLayout()
    s = Score(480)
    s.tempos.append(Tempo(0, 120.0))
    t = Track(name="lead", program=73)  # flute: few strong harmonics
    pitches = [72, 76, 79, 77, 74, 71, 72, 67]
    for i, p in enumerate(pitches):
        t.notes.append(Note(i * 960, 900, p, 100))
    s.tracks.append(t)
    notes = chroma_from_score(s, duration_s=8.0, layout=layout)
    y = render_score(s, sample_rate=SR)[:, :8 * SR]
    audio = chroma_from_audio(y, sr=SR, layout=layout)
    assert audio.shape == notes.shape
    agree = (audio.argmax(axis=1) == notes.argmax(axis=1)).mean()
    assert agree > 0.8, agree


def test_resolve_explains_what_is_wrong(tmp_path, hub_cache, monkeypatch):
    from huggingface_hub import constants

    from musegen.engines.musicgen.resolve import resolve_model
    from musegen.errors import InputError

    (tmp_path / "ac").mkdir()
    (tmp_path / "ac" / "state_dict.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="AudioCraft checkpoint.*convert_musicgen_transformers"):
        resolve_model(tmp_path / "ac")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="not a MusicGen model"):
        resolve_model(tmp_path / "other")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache / "hub"))
    with pytest.raises(InputError, match="musicgen-melody.*hf download facebook/musicgen-melody"):
        resolve_model("musicgen-melody")


def test_pipeline_api_with_melody_from_rendered_audio(models, tmp_path, loaded):
    from musegen.pipeline import generate as run_pipeline

    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=1)
    (r,) = run_pipeline("pop-ballad", midi=sketch, seconds=2, seed=1, engine="musicgen", out_dir=tmp_path / "out",
                        post=[], engine_options={"model": str(models["melody"]), "chroma_source": "audio",
                                                 "threads": 1})
    info = r.sidecar["engine"]["info"]
    assert info["chroma"]["source"] == "audio" and info["chroma"]["frames"] == 1 + (2 * SR) // 4096
    assert r.mid is not None and r.wav.exists()


# -- batched requests (batch runs) --------------------------------------------------------------------

def _mg_request(model, seed: int, prompt: str = "", variations: int = 1, temperature: float | None = None,
                **options):
    from musegen.pipeline import plan_request
    from musegen.presets import load_preset

    return plan_request(load_preset("lofi-chill"), random_seed=seed, tempo=100, key="C", bars=2, prompt=prompt,
                        variations=variations, temperature=temperature,
                        engine_options={"model": str(model), "threads": 1, **options})


def test_per_item_generators_draw_as_each_item_alone(loaded):
    """Rows with their own generators sample the tokens each gets alone; one generator for all does not."""
    import torch

    from musegen.engines.musicgen.fast import Sampling
    from musegen.engines.musicgen.model import Plan

    mg = loaded["text"]
    s = Sampling(top_k=20)
    texts = ["calm piano", "dark techno", "dark techno"]
    alone = [mg.generate(Plan(texts=[t], total_frames=30), sampling=s, generator=torch.Generator().manual_seed(i))
             for i, t in enumerate(texts[:2])]
    g1 = torch.Generator().manual_seed(1)  # the last two rows: one request of two variations
    two = mg.generate(Plan(texts=texts[1:], total_frames=30), sampling=s, generator=g1)
    shared_g = torch.Generator().manual_seed(1)
    gens = [torch.Generator().manual_seed(0), shared_g, shared_g]
    batched = mg.generate(Plan(texts=texts, total_frames=30), sampling=s, generator=gens)
    assert torch.equal(batched[:1], alone[0]) and torch.equal(batched[1:], two)
    shared = mg.generate(Plan(texts=texts, total_frames=30), sampling=s, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(shared[1:], two)


#: the share of a request's tokens that must be its solo run's when batched (see the test below)
SAME_TOKENS = 0.995
#: audio from the same tokens, decoded in passes of other shapes: float rounding only (measured:
#: at most 7.5e-8 on the tiny model), against about 1e-2 where one token of 960 differs
AUDIO_ATOL = 1e-5


def _spy_codes(mg) -> list:
    """Record the codes each decoding call of ``mg`` is given (the real decoder still runs)."""
    calls = []
    decode = mg.decode_long

    def recording(codes, **kw):
        calls.append(codes.clone())
        return decode(codes, **kw)

    mg.decode_long = recording
    return calls


def _closest(row, pool):
    """The row of codes in ``pool`` of ``row``'s shape that agrees with it most, and the share that agrees.

    Rows of other seeds share about 1/2048 of their tokens, so the best match is the same request's.
    """
    same = [c for c in pool if c.shape == row.shape]
    best = max(same, key=lambda c: float((c == row).float().mean()))
    return best, float((best == row).float().mean())


def test_generate_many_gives_each_request_its_solo_tokens_and_audio(models):
    """Requests batched with others draw their solo tokens and give their solo audio (exact kernels).

    What holds on any machine: a batched row's logits equal its solo logits
    up to float rounding (matrix products of other shapes, and MKL's from one
    process to the next, round differently), so a draw that lands within that
    rounding of the boundary between two codes can pick the other one.  That
    is rare (none here on the machine this was written on; one machine drew
    one token of 960 differently for one request), and a request sharing its
    neighbours' generator, or reading their text, would change nearly all its
    tokens.  So: at least SAME_TOKENS of each request's tokens are its solo
    ones, its audio is exactly its own tokens decoded (decoding never mixes
    requests), and where all tokens agree the audio agrees within
    AUDIO_ATOL.  Different prompts (so padded text), a request of two
    variations, long form (several windows), and settings that must not
    share a pass.
    """
    from musegen.engines.musicgen.engine import MusicGenEngine

    eng = MusicGenEngine()
    m = models["text"]
    long = dict(window=2.0, extend_stride=1.0)

    def req(*args, **kw):
        return _mg_request(*args, kernels="exact", **kw)

    requests = [
        req(m, 1, batch_size=8),
        req(m, 2, "jazz piano trio with brass and choir", batch_size=8),
        req(m, 3, "bass", variations=2, prompts=["warm", "dusty vinyl crackle"], batch_size=8),
        req(m, 4, temperature=0.8, batch_size=8),        # another temperature: another pass
        req(m, 5, decoder="stock", batch_size=8),        # transformers' generate(): alone
        req(m, 6, "reel", **long),                       # long form: windows of their own
        req(m, 7, "fiddle", **long),
        req(m, 8, "reel", variations=5, **long),         # more rows than batch_size (4): alone
    ]
    mg = eng.load(str(m))  # the model every request here uses (float32 on the CPU)
    decode = mg.decode_long
    calls = _spy_codes(mg)
    many = generate_batched(eng, requests)
    batched_codes = list(calls)
    assert [len(o) for o in many] == [r.variations for r in requests]
    assert [o[0].info["batch"] for o in many] == [3, 3, 3, 1, 1, 2, 2, 1]
    assert len(many[5][0].info["windows"]) > 1

    def rows(calls):  # codes (codebooks, frames) per row, in the order the rows were decoded
        return [c for codes in calls for c in codes]

    def check(request, alone, alone_rows, batched, pool):
        assert [o.info["text"] for o in alone] == [o.info["text"] for o in batched]
        for a, b, solo_row in zip(alone, batched, alone_rows):
            row, agree = _closest(solo_row, pool)
            assert agree >= SAME_TOKENS, f"seed {request.random_seed}: {agree:.1%} of the solo tokens"
            y = decode(row[None], chunk_s=40.0)[0][:, :b.audio.shape[1]]
            y = np.repeat(y, 2, axis=0) if y.shape[0] == 1 else y
            np.testing.assert_allclose(b.audio, y, rtol=0, atol=AUDIO_ATOL,
                                       err_msg=f"seed {request.random_seed}: not its own tokens' audio")
            if agree == 1.0:
                np.testing.assert_allclose(b.audio, a.audio, rtol=0, atol=AUDIO_ATOL,
                                           err_msg=f"seed {request.random_seed}")

    solo = {}
    for request, batched in zip(requests, many):
        calls.clear()
        alone = eng.generate(request)
        solo[request.random_seed] = (alone, rows(calls))
        assert len(solo[request.random_seed][1]) == request.variations
        check(request, alone, solo[request.random_seed][1], batched, rows(batched_codes))
    assert not np.array_equal(many[0][0].audio, many[1][0].audio)
    assert not np.array_equal(many[2][0].audio, many[2][1].audio)
    # other neighbours, the same result
    calls.clear()
    again = generate_batched(eng, [requests[2], requests[0]])
    assert [o[0].info["batch"] for o in again] == [2, 2]
    for request, outs in zip([requests[2], requests[0]], again):
        check(request, *solo[request.random_seed], outs, rows(calls))


def test_generate_many_batches_a_melody_and_audio_prompts(models, tmp_path):
    """The same sketch (same chroma) batches; audio prompts of one length batch; each as alone."""
    import soundfile as sf

    from musegen import pipeline

    sketch = make_sketch(tmp_path / "sketch.mid", tempo=120, bars=1)
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.random.default_rng(0).standard_normal((SR, 2)).astype(np.float32) * 0.1, SR)
    melody = dict(preset="pop-ballad", midi=sketch, seconds=2, engine="musicgen", post=[],
                  engine_options={"model": str(models["melody"]), "threads": 1})
    prompted = dict(preset="lofi-chill", seconds=2, tempo=100, key="C", engine="musicgen", post=[],
                    engine_options={"model": str(models["text"]), "threads": 1, "audio_prompt": str(clip)})
    calls = [dict(melody, seed=s, out_dir=tmp_path / f"m{s}") for s in (1, 2)]
    calls += [dict(prompted, seed=s, out_dir=tmp_path / f"p{s}") for s in (1, 2)]
    done = {i: out for i, out, _ in pipeline.generate_many(calls)}
    assert [done[i][0].sidecar["engine"]["info"]["batch"] for i in range(4)] == [2, 2, 2, 2]
    for i, call in enumerate(calls):
        (solo,) = pipeline.generate(**dict(call, out_dir=tmp_path / f"solo{i}"))
        np.testing.assert_array_equal(read_wav(solo.wav)[0], read_wav(done[i][0].wav)[0])


def test_batch_run_samples_a_musicgen_seed_sweep_together(models, env, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
title = "musicgen seeds"
[defaults]
engine = "musicgen"
model = {json.dumps(str(models["text"]))}
preset = "lofi-chill"
seconds = 2
tempo = 100
key = "C"
post = []
options = {{ threads = 1 }}
[[sweep]]
grid.seed = [1, 2, 3]
""", encoding="utf-8")
    out = tmp_path / "run"
    r = run(env, "batch", plan, "-o", out, "--workers", "1", "--no-images", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["ok"] * 3
    assert [row["batch_size"] for row in rows] == [3] * 3
    wavs = [read_wav(out / row["outputs"]["wav"])[0] for row in rows]
    assert not np.array_equal(wavs[0], wavs[1])
