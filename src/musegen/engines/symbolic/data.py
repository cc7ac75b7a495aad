"""Token corpora for training: MIDI files -> canonical REMI ids, windows, transposition.

A :class:`TokenCorpus` holds one split as a flat ``int16`` array with piece
offsets and per-piece style and key, saved as ``.npz`` (no pickle).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from musegen.engines.symbolic.tokens import canonicalize, encode, model_styles


@dataclass
class TokenCorpus:
    ids: np.ndarray        # (N,) int16, concatenated REMI ids of every piece
    offsets: np.ndarray    # (P+1,) int64
    style: np.ndarray      # (P,) int8 index into the tokenizer's styles (tokens.model_styles)
    tonic: np.ndarray      # (P,) int8
    minor: np.ndarray      # (P,) bool
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def piece(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, ids=self.ids, offsets=self.offsets, style=self.style, tonic=self.tonic,
                            minor=self.minor, names=np.array(self.names, dtype=np.str_))

    @classmethod
    def load(cls, path: str | Path) -> "TokenCorpus":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["ids"], z["offsets"], z["style"], z["tonic"], z["minor"], [str(n) for n in z["names"]])


def tokenize_piece(tokenizer, path: str | Path, *, max_notes: int = 200_000,
                   force_meter: tuple[int, int] | None = None):
    """``(ids, tonic, minor)`` of one MIDI file, or ``None`` if unusable."""
    from musegen.errors import MidiError
    from musegen.midi.analysis import estimate_key, pitch_class_histogram
    from musegen.midi.io import load_midi
    from musegen.midi.tracks import describe_tracks

    try:
        score = load_midi(path, max_notes=max_notes)
    except MidiError:
        return None
    if force_meter is not None and _declares_pulse_only(score):
        _set_meter(score, force_meter)
    canon, _ = canonicalize(score, describe_tracks(score))
    tonic, mode, _ = estimate_key(pitch_class_histogram(score))
    ids = encode(tokenizer, canon)
    if len(ids) < 32:
        return None
    return np.asarray(ids, dtype=np.int16), int(tonic), mode != "major"


def _declares_pulse_only(score) -> bool:
    """True for no meter or only 1/4 and 2/4 (raw POP909 files); ``scripts/prepare_data.py``
    writes POP909 songs with their meter and bar lines from ``beat_midi.txt``, which stay."""
    return all(ts.denominator == 4 and ts.numerator in (1, 2) for ts in score.time_signatures)


def _set_meter(score, meter: tuple[int, int]) -> None:
    """Replace the meter (most POP909 files declare 1/4 or 2/4 over 4/4 music)."""
    from symusic import TimeSignature

    score.time_signatures.clear()
    score.time_signatures.append(TimeSignature(0, meter[0], meter[1]))


def build_corpus(tokenizer, items: Iterable[tuple[str, str, str]], *, log=sys.stderr) -> TokenCorpus:
    """Tokenize ``(name, path, style)`` items into a corpus."""
    chunks, offsets, styles, tonics, minors, names = [], [0], [], [], [], []
    known = model_styles(tokenizer)
    for k, (name, path, style) in enumerate(items):
        got = tokenize_piece(tokenizer, path, force_meter=(4, 4) if style == "pop" else None)
        if got is None:
            continue
        ids, tonic, minor = got
        chunks.append(ids)
        offsets.append(offsets[-1] + len(ids))
        styles.append(known.index(style) if style in known else 0)
        tonics.append(tonic)
        minors.append(minor)
        names.append(name)
        if log is not None and k % 500 == 0:
            print(f"  tokenized {k} pieces, {offsets[-1]:,} tokens", file=log)
    ids = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return TokenCorpus(ids, np.asarray(offsets, np.int64), np.asarray(styles, np.int8),
                       np.asarray(tonics, np.int8), np.asarray(minors, bool), names)


#: tokens a window leaves free for its controls (two buckets, every part, one ADD)
CONTROL_ROOM = 20


class WindowSampler:
    """Random training windows: conditioning prefix + a span starting at a bar line.

    Each window is transposed by a random shift in ``[-5, 6]`` semitones
    (drum notes stay), with the key token shifted to match.  With a
    :class:`.layout.Layout` (tokenizer version 3) the window gets its controls
    and one of the layout's arrangements (plain, bar infill, part infill).
    """

    def __init__(self, tokenizer, corpus: TokenCorpus, context: int, *, seed: int = 0, transpose: bool = True,
                 layout=None):
        self.tok = tokenizer
        self.layout = layout
        self.corpus = corpus
        self.context = context
        self.rng = np.random.default_rng(seed)
        self.transpose = transpose
        vocab = tokenizer.vocab
        v = len(vocab)
        self.bar_id = vocab["Bar_None"]
        self.bos = vocab["BOS_None"]
        self.style_ids = np.array([vocab[f"STYLE_{s}"] for s in model_styles(tokenizer)])
        self.key_ids = np.array([[vocab[f"KEY_{pc}{q}"] for pc in range(12)] for q in ("maj", "min")])
        # pitch transposition tables: shift[k][id] -> id after transposing by k (or -1 if out of range)
        self.pitch_of = np.full(v, -1, np.int32)
        for tok, i in vocab.items():
            if tok.startswith("Pitch_"):
                self.pitch_of[i] = int(tok.split("_")[1])
        self.pitch_id = {p: i for i, p in enumerate(self.pitch_of) if p >= 0}
        lengths = np.diff(corpus.offsets)
        self.weights = lengths / lengths.sum()
        self._bars: dict[int, np.ndarray] = {}

    def _bar_starts(self, p: int) -> np.ndarray:
        if p not in self._bars:
            self._bars[p] = np.flatnonzero(self.corpus.piece(p) == self.bar_id)
        return self._bars[p]

    def window(self) -> np.ndarray:
        """One window of ``context + 1`` ids (inputs and shifted targets)."""
        c = self.corpus
        p = int(self.rng.choice(len(c), p=self.weights))
        piece = c.piece(p)
        bars = self._bar_starts(p)
        span = self.context + 1 - 3 - (CONTROL_ROOM if self.layout is not None else 0)
        ok = bars[bars <= max(0, len(piece) - span // 2)]
        start = int(self.rng.choice(ok)) if len(ok) else 0
        body = piece[start:start + span].astype(np.int64)
        shift = 0
        if self.transpose:
            pitches = self.pitch_of[body]
            pitches = pitches[pitches >= 0]
            if len(pitches):
                lo = max(-5, 21 - int(pitches.min()))
                hi = min(6, 108 - int(pitches.max()))
                shift = int(self.rng.integers(lo, hi + 1)) if lo <= hi else 0
            if shift:
                mask = self.pitch_of[body] >= 0
                body[mask] = [self.pitch_id[int(x) + shift] for x in self.pitch_of[body[mask]]]
        key = self.key_ids[int(c.minor[p]), (int(c.tonic[p]) + shift) % 12]
        prefix = np.array([self.bos, self.style_ids[c.style[p]], key], np.int64)
        if self.layout is not None:
            complete = start + span >= len(piece)
            out = self.layout.window(self.rng, prefix, body, complete, self.context + 1)
        else:
            out = np.concatenate([prefix, body])
        if len(out) < self.context + 1:
            out = np.concatenate([out, np.full(self.context + 1 - len(out), -100, np.int64)])
        return out

    def batch(self, n: int) -> np.ndarray:
        return np.stack([self.window() for _ in range(n)])
