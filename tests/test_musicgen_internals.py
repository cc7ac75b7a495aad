"""The transformers internals musegen's MusicGen decoding reads, pinned (on tiny models built here).

``engines/musicgen/fast.py`` and the compiled step ``native/step.cpp`` do
not call transformers' ``forward()``: they read the decoder's modules and
weights by name and run its arithmetic themselves.  A transformers release
that renames a module, moves a weight or changes a helper's signature would
break them deep inside a generation, or not visibly at all (a GELU turned
into its tanh approximation would still run, and draw other tokens).  Each
:class:`Pin` states one such assumption and the musegen code that relies on
it; :func:`test_transformers_still_has_what_musicgen_decoding_reads` checks
them all and fails once, listing every one that no longer holds.

musegen uses none of transformers' cache classes (``fast.py`` keeps its own
static key/value cache), so none is pinned here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SRC = Path(__file__).resolve().parents[1] / "src" / "musegen" / "engines" / "musicgen"
FAST = "src/musegen/engines/musicgen/fast.py"
STEP = "src/musegen/engines/musicgen/native/step.cpp"
MODEL = "src/musegen/engines/musicgen/model.py"


@dataclass(frozen=True)
class Pin:
    """One thing musegen reads from transformers.

    ``what`` names it, ``where`` is the musegen file (and function) that
    reads it, ``needle`` a word that file must contain (so a pin whose
    code has gone is noticed), and ``check(models)`` raises with what is
    different when it no longer holds.
    """

    what: str
    where: str
    needle: str
    check: Callable[[dict], None]


class Changed(Exception):
    """What a pin found instead of what it expected."""


def _get(obj, path: str):
    """``obj.a.b.c`` for ``path`` "a.b.c", or :class:`Changed` naming the first missing step."""
    for part in path.split("."):
        if not hasattr(obj, part):
            raise Changed(f"{type(obj).__name__} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


def _is(obj, path: str, cls, **shape):
    """``obj.path`` is a ``cls``; each keyword (``in_features=48``) is an attribute it must have, with that value."""
    m = _get(obj, path)
    if not isinstance(m, cls):
        raise Changed(f"{path} is a {type(m).__name__}, not a {cls.__name__}")
    for name, value in shape.items():
        got = getattr(m, name, None)
        if got != value:
            raise Changed(f"{path}.{name} is {got!r}, expected {value!r}")
    return m


def _params(fn, *names: str) -> None:
    """``fn`` takes parameters ``names`` (by those names)."""
    have = inspect.signature(fn).parameters
    missing = [n for n in names if n not in have]
    if missing:
        raise Changed(f"{getattr(fn, '__qualname__', fn)}{inspect.signature(fn)} lacks parameter(s) "
                      f"{', '.join(missing)}")


def _lms(models):
    return [(kind, m.decoder) for kind, m in models.items()]


# -- the pins ----------------------------------------------------------------------------------

def _causal_lm(models):
    from transformers import MusicgenForCausalLM, MusicgenMelodyForCausalLM

    for kind, cls in (("text", MusicgenForCausalLM), ("melody", MusicgenMelodyForCausalLM)):
        _is(models[kind], "decoder", cls)


def _decoder_parts(models):
    from torch import nn

    for _, lm in _lms(models):
        cfg = _get(lm, "config")
        for field in ("num_attention_heads", "hidden_size", "max_position_embeddings", "activation_function",
                      "ffn_dim", "num_hidden_layers", "bos_token_id"):
            _get(cfg, field)
        K, D = int(_get(lm, "num_codebooks")), int(cfg.hidden_size)
        core = _get(lm, "model.decoder")
        for path, n, cls in (("embed_tokens", K, nn.Embedding), ("layers", cfg.num_hidden_layers, None)):
            seq = _is(core, path, nn.ModuleList)
            if len(seq) != n or (cls and not all(isinstance(e, cls) for e in seq)):
                raise Changed(f"model.decoder.{path} holds {len(seq)} {type(seq[0]).__name__}, expected {n}")
        _is(core, "layer_norm", nn.LayerNorm, normalized_shape=(D,))
        heads = _is(lm, "lm_heads", nn.ModuleList)
        if len(heads) != K or not all(isinstance(h, nn.Linear) and h.in_features == D for h in heads):
            raise Changed(f"lm_heads is not {K} Linear({D}, vocab)")


def _positions(models):
    import torch

    for _, lm in _lms(models):
        w = _get(lm, "model.decoder.embed_positions.weights")
        n, D = lm.config.max_position_embeddings, lm.config.hidden_size
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or w.shape[0] < n or w.shape[1] != D:
            raise Changed(f"embed_positions.weights is {getattr(w, 'shape', type(w).__name__)}, "
                          f"expected a tensor ({n}+, {D}) indexed by position")


def _layer_modules(prefix: str, cross: bool):
    def check(models):
        from torch import nn

        for kind, lm in _lms(models):
            if cross and kind != "text":
                continue
            D, F = lm.config.hidden_size, lm.config.ffn_dim
            for i, layer in enumerate(lm.model.decoder.layers):
                where = f"{kind} model, layer {i}: "
                try:
                    if prefix in ("self_attn", "encoder_attn"):
                        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                            _is(layer, f"{prefix}.{proj}", nn.Linear, in_features=D, out_features=D)
                        if not isinstance(_get(layer, f"{prefix}.scaling"), float):
                            raise Changed(f"{prefix}.scaling is not a float")
                        _is(layer, f"{prefix}_layer_norm", nn.LayerNorm, normalized_shape=(D,))
                    else:
                        _is(layer, "final_layer_norm", nn.LayerNorm, normalized_shape=(D,))
                        _is(layer, "fc1", nn.Linear, in_features=D, out_features=F)
                        _is(layer, "fc2", nn.Linear, in_features=F, out_features=D)
                        if not callable(_get(layer, "activation_fn")):
                            raise Changed("activation_fn is not callable")
                except Changed as exc:
                    raise Changed(where + str(exc)) from None
    return check


def _gelu_is_erf(models):
    """step.cpp computes GELU's erf form where the config says "gelu"."""
    import torch
    import torch.nn.functional as F
    from transformers.activations import ACT2FN

    x = torch.linspace(-4, 4, 801)
    erf = 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))
    for name, fn in [("ACT2FN['gelu']", ACT2FN["gelu"])] + [
            (f"{kind} layer 0 activation_fn", lm.model.decoder.layers[0].activation_fn) for kind, lm in _lms(models)
            if lm.config.activation_function == "gelu"]:
        got = fn(x)
        if not torch.allclose(got, erf, rtol=0, atol=1e-6) or not torch.equal(got, F.gelu(x)):
            raise Changed(f"{name} is not the erf GELU (max difference {float((got - erf).abs().max()):.2e})")


def _delay_pattern(models):
    import torch

    for _, lm in _lms(models):
        fn = _get(lm, "build_delay_pattern_mask")
        _params(fn, "input_ids", "pad_token_id", "max_length")
        K, start = lm.num_codebooks, lm.generation_config.decoder_start_token_id
        if start is None:
            raise Changed("generation_config.decoder_start_token_id is None")
        out = fn(torch.full((2 * K, 1), start), pad_token_id=start, max_length=K + 6)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Changed(f"build_delay_pattern_mask returned {type(out).__name__}, expected (ids, pattern)")
        pattern = out[1]
        if tuple(pattern.shape) != (2 * K, K + 6) or not bool((pattern == -1).any()) \
                or int(pattern[0, 0]) != start:
            raise Changed(f"its pattern is {tuple(pattern.shape)} starting {int(pattern[0, 0])}, expected "
                          f"({2 * K}, {K + 6}) starting with the start token and -1 where tokens are drawn")


def _warpers(models):
    import torch
    from transformers.generation import logits_process as lp

    scores = torch.randn(3, 10)
    for cls, kw in (("TemperatureLogitsWarper", {"temperature": 0.7}), ("TopKLogitsWarper", {"top_k": 4}),
                    ("TopPLogitsWarper", {"top_p": 0.5})):
        warper = _get(lp, cls)
        _params(warper.__init__, *kw)
        out = warper(**kw)(None, scores.clone())
        if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
            raise Changed(f"{cls}(...)(None, scores) returned {type(out).__name__}, expected the scores")


def _conditioning(models):
    import torch

    for kind, m in models.items():
        if m.config.model_type != {"text": "musicgen", "melody": "musicgen_melody"}[kind]:
            raise Changed(f"config.model_type is {m.config.model_type!r}")
        _params(m.text_encoder.forward, "input_ids", "attention_mask")
        ids = torch.ones(1, 3, dtype=torch.long)
        _get(m.text_encoder(input_ids=ids, attention_mask=torch.ones_like(ids)), "last_hidden_state")
        if kind == "text":
            _get(m.decoder.config, "cross_attention_hidden_size")
        if m.text_encoder.config.hidden_size != m.decoder.config.hidden_size:
            _get(m, "enc_to_dec_proj")
        if kind == "melody":
            for path in ("config.num_chroma", "config.chroma_length"):
                _get(m, path)
            if m.config.num_chroma != m.decoder.config.hidden_size:
                _get(m, "audio_enc_to_dec_proj")


def _codec(models):
    import torch

    m = models["text"]
    codec = _get(m, "audio_encoder")
    for path in ("config.audio_encoder.sampling_rate", "config.audio_encoder.upsampling_ratios"):
        _get(m, path)
    _params(codec.decode, "audio_codes", "audio_scales")
    codes = torch.zeros(1, 1, m.decoder.num_codebooks, 4, dtype=torch.long)
    _get(codec.decode(codes, audio_scales=[None]), "audio_values")
    y = torch.zeros(1, 1, 640 * 4)
    _get(codec.encode(y, return_dict=True), "audio_codes")


PINS = [
    Pin("model.decoder is MusicgenForCausalLM / MusicgenMelodyForCausalLM", f"{MODEL} (MusicGenModel: self.lm)",
        "model.decoder", _causal_lm),
    Pin("the decoder's parts: config fields, num_codebooks, model.decoder.{embed_tokens,layers,layer_norm}, "
        "lm_heads", f"{FAST} (FastDecoder.__init__)", "embed_tokens", _decoder_parts),
    Pin("model.decoder.embed_positions.weights, the sinusoidal table sliced by position",
        f"{FAST} (FastDecoder.generate, _prompt_pass)", "positions.weights", _positions),
    Pin("self_attn.{q,k,v,out}_proj, self_attn.scaling, self_attn_layer_norm of each layer",
        f"{FAST} (FastDecoder._forward, _native_layer) and {STEP} (kLayerNames)", "self_attn.q_proj",
        _layer_modules("self_attn", cross=False)),
    Pin("encoder_attn.{q,k,v,out}_proj, encoder_attn.scaling, encoder_attn_layer_norm of each text-model layer",
        f"{FAST} (FastDecoder._cross_kv, _cross_attend, _fold, _native_layer) and {STEP} (kLayerNames)",
        "encoder_attn.q_proj", _layer_modules("encoder_attn", cross=True)),
    Pin("final_layer_norm, fc1, fc2, activation_fn of each layer",
        f"{FAST} (FastDecoder._forward, _native_layer) and {STEP} (kLayerNames)", "final_layer_norm",
        _layer_modules("ffn", cross=False)),
    Pin('activation_function "gelu" is the erf GELU', f"{STEP} (gelu) via {FAST} (FastDecoder._native_step)",
        '"gelu"', _gelu_is_erf),
    Pin("build_delay_pattern_mask(input_ids, pad_token_id=, max_length=) -> (ids, pattern with -1 to draw)",
        f"{FAST} (FastDecoder._pattern)", "build_delay_pattern_mask", _delay_pattern),
    Pin("transformers.generation.logits_process: Temperature/TopK/TopP warpers called as warper(None, scores)",
        f"{FAST} (Sampling.warpers, FastDecoder.generate)", "TopKLogitsWarper", _warpers),
    Pin("text_encoder(input_ids=, attention_mask=).last_hidden_state, enc_to_dec_proj, audio_enc_to_dec_proj, "
        "config.num_chroma / chroma_length / decoder.cross_attention_hidden_size",
        f"{MODEL} (MusicGenModel.conditioning, the decoder's input)", "enc_to_dec_proj", _conditioning),
    Pin("audio_encoder.decode(codes, audio_scales=).audio_values and encode(y, return_dict=True).audio_codes",
        f"{MODEL} (MusicGenModel.decode, encode)", "audio_scales", _codec),
]


def problems(models: dict) -> list[str]:
    """One line per pin that no longer holds for ``models`` ({"text": ..., "melody": ...})."""
    out = []
    for pin in PINS:
        try:
            pin.check(models)
        except Exception as exc:  # noqa: BLE001 -- any failure of a pin is reported, with its kind
            kind = "" if isinstance(exc, Changed) else f"{type(exc).__name__}: "
            out.append(f"- {pin.what}\n    now: {kind}{exc}\n    relied on by: {pin.where}")
    return out


def report(models: dict) -> str | None:
    """The one message a changed transformers gets, or None when every pin holds."""
    import transformers

    found = problems(models)
    if not found:
        return None
    return (f"transformers {transformers.__version__} changed {len(found)} thing(s) musegen's MusicGen decoding "
            "reads by name (adapt the code named, or pin transformers to a version where this test passes):\n"
            + "\n".join(found))


@pytest.fixture(scope="module")
def built():
    """``{"text": (model, tokenizer), "melody": (model, tokenizer)}``, tiny, random weights."""
    from musegen.engines.musicgen.testing import build_model

    return {"text": build_model("tiny"), "melody": build_model("tiny", melody=True)}


@pytest.fixture(scope="module")
def models(built):
    return {kind: model for kind, (model, _) in built.items()}


def test_transformers_still_has_what_musicgen_decoding_reads(models):
    message = report(models)
    if message:
        pytest.fail(message, pytrace=False)


def test_each_pin_names_code_that_reads_it():
    root = Path(__file__).resolve().parents[1]
    stale = []
    for pin in PINS:
        files = re.findall(r"src/\S+\.(?:py|cpp)", pin.where)
        if not any(pin.needle in (root / f).read_text() for f in files):
            stale.append(f"{pin.what}: {pin.needle!r} is in none of {files}")
    assert not stale, "pins whose code no longer reads them:\n" + "\n".join(stale)


def test_a_renamed_module_is_named_with_the_code_that_reads_it(models):
    import copy

    from torch import nn

    text = copy.deepcopy(models["text"])
    attn = text.decoder.model.decoder.layers[1].self_attn
    attn.query = attn.q_proj  # as if transformers renamed q_proj
    del attn.q_proj
    message = report({**models, "text": text})
    assert message is not None and len([line for line in message.splitlines() if line.startswith("- ")]) == 1, message
    assert "layer 1: MusicgenAttention has no attribute 'q_proj'" in message
    assert FAST in message and STEP in message
    text.decoder.model.decoder.layers[1].self_attn.q_proj = nn.Linear(48, 48)
    assert report({**models, "text": text}) is None


def test_a_changed_signature_is_named_with_the_code_that_reads_it(models, monkeypatch):
    from transformers import MusicgenForCausalLM, MusicgenMelodyForCausalLM

    for cls in (MusicgenForCausalLM, MusicgenMelodyForCausalLM):
        original = cls.build_delay_pattern_mask
        monkeypatch.setattr(cls, "build_delay_pattern_mask",
                            lambda self, ids, pad_id, max_length=None, _f=original: _f(self, ids, pad_id, max_length))
    message = report(models)
    assert message is not None and "lacks parameter(s) input_ids, pad_token_id" in message, message
    assert f"relied on by: {FAST} (FastDecoder._pattern)" in message


# -- the C++/Python boundary of kernels=native ----------------------------------------------------

def _step_names() -> set[str]:
    """The layer tensor names step.cpp reads (its kLayerNames)."""
    text = (SRC / "native" / "step.cpp").read_text()
    block = re.search(r"kLayerNames = \{(.*?)\};", text, re.DOTALL)
    assert block, "step.cpp has no kLayerNames list"
    return set(re.findall(r'"([^"]+)"', re.sub(r"//[^\n]*", "", block.group(1))))


@pytest.mark.parametrize("texts,guided,form", [
    (["warm jazz"], True, "folded"),  # short text: the folded cross-attention, constant unconditional rows
    (["lofi beats with mellow rhodes chords", "dark techno"], True, "unfolded"),  # padded texts
    (["a"], False, "folded"),  # no guidance: every row live
    (None, True, "none"),  # melody: no cross-attention
])
def test_fast_passes_native_the_names_step_cpp_reads(built, texts, guided, form):
    import torch

    from musegen.engines.musicgen.fast import FastDecoder
    from musegen.engines.musicgen.model import MusicGenModel

    kind = "melody" if texts is None else "text"
    mg = MusicGenModel(*built[kind], name="tiny")
    with torch.inference_mode():
        cond = mg.conditioning(texts or ["x"], guided=guided)
        fd = FastDecoder(mg.lm, kernels="native")
        cross = fd._cross_plan(cond)
        rows = cond.rows
        keys, values = fd._caches(rows, 16, fd.positions.weights)
        passed = [fd._native_layer(i, cross, rows, keys[i], values[i]) for i in range(len(fd.layers))]
    assert form == ("none" if cross is None else "folded" if cross.folded is not None else "unfolded")
    known = _step_names()
    for i, named in enumerate(passed):
        assert set(named) <= known, f"names step.cpp does not read: {sorted(set(named) - known)}"
        assert named["self_attn.cache_keys"] is keys[i] and named["self_attn.cache_values"] is values[i]  # in place
        given = {k for k, v in named.items() if v is not None}
        assert {"self_attn.q_proj.weight", "fc2.weight", "self_attn.cache_values"} <= given
        if form == "folded":
            assert {"encoder_attn.folded_scores", "encoder_attn.folded_values"} <= given
            assert not given & {"encoder_attn.text_keys", "encoder_attn.q_proj.weight"}
        elif form == "unfolded":
            assert {"encoder_attn.text_keys", "encoder_attn.q_proj.weight", "encoder_attn.padding"} <= given
        else:
            assert not any(k.startswith("encoder_attn") for k in given)
