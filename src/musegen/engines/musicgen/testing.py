"""Random-weight MusicGen models for tests and benchmarks (nothing is downloaded).

``"tiny"`` is a few-kilobyte model with MusicGen's real layout (32 kHz
EnCodec with hop 640, 4 codebooks, delay pattern, T5 text encoder) that
generates seconds of audio in a moment; ``"small"`` has
facebook/musicgen-small's exact architecture (a 24-layer, 1024-wide decoder,
T5-base, the 32 kHz EnCodec) for speed measurements.  The text tokenizer is a
small Unigram model trained here with the ``tokenizers`` package and wrapped
as transformers' ``T5Tokenizer``, so a saved folder loads offline like a
checkpoint from the hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ARCHS = ("tiny", "small")

_WORDS = (
    "lofi hip hop beat mellow rhodes chords dusty vinyl crackle synthwave retro 80s drums bass guitar "
    "piano jazz trio bossa nova techno ambient pads cinematic strings brass choir irish reel fiddle "
    "chiptune square wave bach chorale organ warm slow fast happy sad epic calm bright dark upbeat "
    "acoustic electric groove swing waltz minor major tempo bpm melody harmony reverb lush sparse"
).split()

MELODY_PREPROCESSOR = {
    "chunk_length": 30, "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "feature_size": 12,
    "hop_length": 4096, "n_fft": 16384, "num_chroma": 12, "padding_side": "left", "padding_value": 0.0,
    "processor_class": "MusicgenMelodyProcessor", "return_attention_mask": True, "sampling_rate": 32000,
    "stem_indices": [3, 2],
}


def make_tokenizer(vocab_size: int = 160):
    """A T5 tokenizer (Unigram) trained offline on a few hundred music words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    corpus = [" ".join(_WORDS[i:i + 9]) for i in range(len(_WORDS))] * 4
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    vocab = [(piece, float(score)) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def configs(arch: str = "tiny", *, melody: bool = False):
    """``(text_encoder, audio_encoder, decoder)`` configs of an architecture."""
    from transformers import EncodecConfig, MusicgenDecoderConfig, MusicgenMelodyDecoderConfig, T5Config

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if arch == "small":  # facebook/musicgen-small
        text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                        relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu")
        codec = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=128, num_filters=64,
                              upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, target_bandwidths=[2.2],
                              use_causal_conv=False, use_conv_shortcut=False, normalize=False, num_lstm_layers=2)
        dec = dict(vocab_size=2048, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                   ffn_dim=4096, num_codebooks=4, max_position_embeddings=2048, dropout=0.1)
        pad = 2048
    else:
        text = T5Config(vocab_size=160, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, dropout_rate=0.0, feed_forward_proj="relu")
        codec = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=16, num_filters=4,
                              upsampling_ratios=[8, 5, 4, 4], codebook_size=64, target_bandwidths=[1.2],
                              use_causal_conv=False, use_conv_shortcut=False, normalize=False, num_lstm_layers=1)
        dec = dict(vocab_size=64, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, ffn_dim=96,
                   num_codebooks=4, max_position_embeddings=2048, dropout=0.0)
        pad = 64
    cls = MusicgenMelodyDecoderConfig if melody else MusicgenDecoderConfig
    decoder = cls(**dec, pad_token_id=pad, bos_token_id=pad, decoder_start_token_id=pad)
    return text, codec, decoder


def build_model(arch: str = "tiny", *, melody: bool = False, seed: int = 0):
    """A random-weight model of ``arch`` and its tokenizer: ``(model, tokenizer)``."""
    import torch
    from transformers import (
        GenerationConfig,
        MusicgenConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    from musegen.engines.musicgen.model import quiet_transformers

    with quiet_transformers():
        text, codec, decoder = configs(arch, melody=melody)
        torch.manual_seed(seed)
        if melody:
            cfg = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder,
                                       num_chroma=12, chroma_length=235)
            model = MusicgenMelodyForConditionalGeneration(cfg)
        else:
            cfg = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)
            model = MusicgenForConditionalGeneration(cfg)
    # EnCodec's codebooks start as zeros (they are learned by k-means); random ones make the
    # audio depend on the codes
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            book = layer.codebook
            book.embed.copy_(torch.randn(book.embed.shape, generator=gen))
            book.embed_avg.copy_(book.embed)
    pad = decoder.pad_token_id
    model.generation_config = GenerationConfig(
        do_sample=True, guidance_scale=3.0, max_length=1500, top_k=250,
        pad_token_id=pad, bos_token_id=pad, decoder_start_token_id=pad,
    )
    tokenizer = make_tokenizer(160 if arch == "tiny" else 400)
    return model.eval(), tokenizer


def save_model(model, tokenizer, path: str | os.PathLike[str]) -> Path:
    """Write a model folder as the hub has them (config, safetensors, tokenizer, melody preprocessor)."""
    from musegen.engines.musicgen.model import quiet_transformers

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    if model.config.model_type == "musicgen_melody":
        (out / "preprocessor_config.json").write_text(json.dumps(MELODY_PREPROCESSOR, indent=2) + "\n")
    return out


def make_model_dir(path: str | os.PathLike[str], arch: str = "tiny", *, melody: bool = False,
                   seed: int = 0) -> Path:
    """Build a random-weight model and save it to ``path``; returns the folder."""
    model, tokenizer = build_model(arch, melody=melody, seed=seed)
    return save_model(model, tokenizer, path)
