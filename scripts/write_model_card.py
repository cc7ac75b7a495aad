"""Write a checkpoint's ``MODEL_CARD.md``: what the model is, what it learned from, under which terms.

    python scripts/write_model_card.py [FOLDER] --data data/ [--eval eval.json] [--id ID] [--command TEXT]

``FOLDER`` is a checkpoint folder (default: the shipped weights,
``src/musegen/engines/symbolic/weights``); its ``MODEL_CARD.md`` is
(re)written from its ``config.json`` (shape, steps, losses, the ``data``
table ``scripts/train_symbolic.py`` records), its ``model.safetensors``
(parameters counted from the header), its ``tokenizer.json`` (styles), the
tokenized training split in ``--data`` (pieces and tokens per source, the
source being a piece id's first part) and :data:`SOURCES` below: every
source's licence, terms as its own notes state them, attribution and a
commercial-use judgement.  The card's front matter (``id``,
``training_sources``, ``training_pieces``, ``license``) is what
``musegen.engines.symbolic.card`` and ``musegen.provenance`` read; the
``license`` is ``non-commercial`` as soon as one source is not free for
commercial use (:func:`weights_licence`).

``--eval FILE`` fills the card's ``## Evaluation`` section from a JSON dict
``{name: [lines]}`` (or ``{name: "text"}``), so measured numbers go in on
a rerun; without it the section says nothing has been measured.  The output
depends only on these inputs (no dates, sorted tables), so a rerun writes the
same bytes; the card is written to a temporary file and renamed.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import struct
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
WEIGHTS = ROOT / "src" / "musegen" / "engines" / "symbolic" / "weights"
SPLIT_FILE = ROOT / "scripts" / "data_split.json"
CARD = "MODEL_CARD.md"

#: the music21 corpus's own notice (``music21/corpus/license.txt``), which covers every collection
#: below whose terms say "music21 corpus notice"
M21_NOTICE = "music21 corpus notice"
M21 = "music21 corpus (Cuthbert and Ariza, ISMIR 2010)"

#: every source a model may be trained on: licence (short form), terms (as the source's own licence
#: files and file headers state them; checked in ../shared/data/*/LICENSE* and music21 10.5.1's corpus),
#: attribution, ``commercial`` (may what the weights make be used commercially under these terms?),
#: ``share_alike`` (the licence the weights must carry when the source's terms are share-alike, else
#: None) and the style token its pieces get (``scripts/prepare_data.py``)
SOURCES: dict[str, dict] = {
    # --- ../shared/data (SOURCES.md there)
    "pop909": {
        "licence": "MIT", "commercial": True, "share_alike": None, "style": "pop",
        "terms": "MIT License, (c) 2020 Music X Lab (`pop909/LICENSE`)",
        "attribution": "Wang, Chen, Jiang, Zhang, Xu, Dai, Bin, Xia: POP909, a pop-song dataset for music "
                       "arrangement generation, ISMIR 2020"},
    "groove": {
        "licence": "CC BY 4.0", "commercial": True, "share_alike": None, "style": "drums",
        "terms": "Creative Commons Attribution 4.0 International (`groove/LICENSE`): any use, with credit",
        "attribution": "Gillick, Roberts, Engel, Eck, Bamman: Learning to Groove with Inverse Sequence "
                       "Transformations, ICML 2019 (Magenta Groove MIDI Dataset v1.0.0)"},
    "pianolatron": {
        "licence": "MIT", "commercial": True, "share_alike": None, "style": "piano",
        "terms": "MIT License, (c) 2022 Piano Rolls (`pianolatron/LICENSE`, the pianolatron-data repository); "
                 "MIDI of rolls punched in the early 1900s, notes as punched",
        "attribution": "Stanford University Libraries, Pianolatron (pianoroll/pianolatron-data)"},
    "lieder": {
        "licence": "CC0 1.0", "commercial": True, "share_alike": None, "style": "lieder",
        "terms": "CC0 1.0 Universal (`lieder/LICENSE.txt`); the project asks for credit in public-facing use",
        "attribution": "OpenScore Lieder Corpus (Gotham and Jonas, Music Encoding Conference 2021)"},
    "irish-cre": {
        "licence": "CC BY 4.0 / Unlicense", "commercial": True, "share_alike": None, "style": "folk",
        "terms": "README: CC BY 4.0; `LICENSE.md`: the Unlicense (\"for any purpose, commercial or "
                 "non-commercial\")",
        "attribution": "Ceol Rince na hEireann (Bill Black's Irish tune archive, capeirish.com); Polifonia "
                       "project, Diamond, Shahid and McDermott: FONN (NUI Galway, 2022)"},
    "openewld": {
        "licence": "public domain (scores); MIT (repository)", "commercial": True, "share_alike": None,
        "style": "leadsheet",
        "terms": "README: \"only public domain scores\"; code and database MIT (`openewld/LICENSE`); its "
                 "secondhandsongs.com metadata (CC BY-NC 3.0) is not used: only the scores and chord symbols",
        "attribution": "Federico Simonetta, OpenEWLD (from the Enhanced Wikifonia Leadsheet Dataset)"},
    # --- the music21 corpus: collections trained on
    "airdsAirs": {
        "licence": "public domain tunes", "commercial": True, "share_alike": None, "style": "folk",
        "terms": f"tunes printed from 1778, no licence note; {M21_NOTICE}",
        "attribution": f"James Aird, A Selection of Scotch, English, Irish and Foreign Airs; {M21}"},
    "bach": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "chorale",
        "terms": "the MusicXML chorales: \"PDF (c) 2003-2004 Margaret Greentree, used by permission\" and no "
                 f"restriction; {M21_NOTICE}. The 3 Humdrum files (\"Copyright 1994, CCARH. Rights to all "
                 "derivative electronic formats reserved\") are left out",
        "attribution": f"J. S. Bach chorales, encodings after Margaret Greentree; {M21}"},
    "beethoven": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"string quartets; Humdrum encodings by Craig Stuart Sapp without a rights line; {M21_NOTICE}",
        "attribution": f"Ludwig van Beethoven; encodings by Craig Stuart Sapp and others; {M21}"},
    "chopin": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"Humdrum encoding by Craig Stuart Sapp without a rights line; {M21_NOTICE}",
        "attribution": f"Frederic Chopin, Mazurka op. 6 no. 2; encoding by Craig Stuart Sapp; {M21}"},
    "corelli": {
        "licence": "CC BY", "commercial": True, "share_alike": None, "style": "classical",
        "terms": "\"(c) 2014, Creative Commons License (CC-BY)\" (the file's rights field)",
        "attribution": f"Arcangelo Corelli, op. 3 no. 1; encoding by Michael Scott Cuthbert, 2014; {M21}"},
    "cpebach": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"C. P. E. Bach, Sonata H. 186; {M21}"},
    "handel": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"G. F. Handel, Rinaldo: Lascia ch'io pianga; {M21}"},
    "haydn": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"Joseph Haydn, string quartets; {M21}"},
    "johnson_j_r": {
        "licence": "public domain; encoding CC0", "commercial": True, "share_alike": None, "style": "classical",
        "terms": "\"Public Domain (Encoding by MSAC: CC0)\" (the file's rights field)",
        "attribution": f"J. Rosamond and James Weldon Johnson, Lift Every Voice and Sing; encoding by Michael "
                       f"Scott Asato Cuthbert; {M21}"},
    "joplin": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"Maple Leaf Rag (1899), a musescore.com user's encoding without a rights line; {M21_NOTICE}",
        "attribution": f"Scott Joplin, Maple Leaf Rag; {M21}"},
    "liliuokalani": {
        "licence": "public domain; encoding CC0", "commercial": True, "share_alike": None, "style": "classical",
        "terms": "\"Copyright 1884 by LILIUOKALANI (Now, Public Domain; Encoding by MSAC, CC0)\"",
        "attribution": f"Liliuokalani, Aloha Oe; encoding by Michael Scott Asato Cuthbert; {M21}"},
    "miscFolk": {
        "licence": "public domain tunes", "commercial": True, "share_alike": None, "style": "folk",
        "terms": f"Northumbrian Minstrelsy (1882) and American fife tunes in Jack Campin's ABC; {M21_NOTICE}",
        "attribution": f"Jack Campin (ABC transcriptions); {M21}"},
    "mozart": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"W. A. Mozart, string quartets; {M21}"},
    "nottingham-dataset": {
        "licence": "public domain tunes", "commercial": True, "share_alike": None, "style": "folk",
        "terms": f"Nottingham Music Database ABC (via Eric Foxley) without a licence line; {M21_NOTICE}",
        "attribution": f"Nottingham Music Database (Eric Foxley); {M21}"},
    "oneills1850": {
        "licence": "public domain tunes", "commercial": True, "share_alike": None, "style": "folk",
        "terms": f"tunes of O'Neill's collection (1903), ABC by volunteer transcribers; {M21_NOTICE}",
        "attribution": f"Francis O'Neill, The Music of Ireland (1903), ABC transcriptions by Norbert Paap "
                       f"and others; {M21}"},
    "ryansMammoth": {
        "licence": "public domain tunes", "commercial": True, "share_alike": None, "style": "folk",
        "terms": f"Ryan's Mammoth Collection (1883), ABC contributed by Ray Davies and others; {M21_NOTICE}",
        "attribution": f"William Bradbury Ryan, Ryan's Mammoth Collection (1883); {M21}"},
    "schubert": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"an empty \"Copyright (c)\" field (encoder Luke Poeppel, 2017); {M21_NOTICE}",
        "attribution": f"Franz Schubert, Der Lindenbaum; encoding by Luke Poeppel; {M21}"},
    "schumann_clara": {
        "licence": "CC BY-SA 4.0", "commercial": True, "share_alike": "cc-by-sa-4.0", "style": "classical",
        "terms": "4 of its 5 pieces, the Polonaises op. 1: \"Typeset by Cypressdome for IMSLP and released under "
                 "the CC BY-SA 4.0 license\" (commercial use allowed, with credit, share-alike); the trio "
                 f"movement: an empty \"(c)\"; {M21_NOTICE}",
        "attribution": f"Clara Schumann; Polonaises typeset by Cypressdome for IMSLP (CC BY-SA 4.0); {M21}"},
    "schumann_robert": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"no licence note; {M21_NOTICE}",
        "attribution": f"Robert Schumann; encodings by Michael Scott Cuthbert and others; {M21}"},
    "trecento": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "polyphony",
        "terms": f"encodings of the Trecento project (empty \"Copyright (c)\" fields); {M21_NOTICE}",
        "attribution": f"Michael Scott Cuthbert's Trecento encodings (with K. Cowger, E. Lynch and others); {M21}"},
    "verdi": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "classical",
        "terms": f"an arrangement by Richard Krentslin without a rights line; {M21_NOTICE}",
        "attribution": f"Giuseppe Verdi, Rigoletto: La donna e mobile (arr. Richard Krentslin); {M21}"},
    "weber": {
        "licence": "public domain", "commercial": True, "share_alike": None, "style": "classical",
        "terms": "\"Released to Public Domain in 1998\" (Oliver Seely)",
        "attribution": f"C. M. von Weber, Concertino for clarinet; encoding by Oliver Seely; {M21}"},
    "lusitano": {
        "licence": "public domain work", "commercial": True, "share_alike": None, "style": "polyphony",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"Vicente Lusitano; {M21}"},
    "monteverdi": {
        "licence": "public domain works", "commercial": True, "share_alike": None, "style": "polyphony",
        "terms": f"no licence note; {M21_NOTICE}", "attribution": f"Claudio Monteverdi, madrigals; {M21}"},
    # --- music21 collections that scripts/prepare_data.py leaves out (its EXCLUDED; the v1 model
    # was trained on some of them)
    "essenFolksong": {
        "licence": "non-commercial", "commercial": False, "share_alike": None, "style": "folk",
        "terms": "**non-commercial** permission only (\"legal status ... unclear\"; "
                 "`music21/corpus/essenFolksong/license.txt`)",
        "attribution": "Essen Folksong Collection (H. Schaffrath, E. Dahlig-Turek); ABC by Seymour Schlien"},
    "palestrina": {
        "licence": "rights reserved", "commercial": False, "share_alike": None, "style": "polyphony",
        "terms": "**rights reserved**: \"Copyright 2000, John Miller. Rights to all derivative electronic formats "
                 "reserved. Refer to licensing agreement\" (not shipped)",
        "attribution": "John Miller, Humdrum Palestrina masses (converted by Bret Aarden)"},
    "josquin": {
        "licence": "GPL-2", "commercial": True, "share_alike": "gpl-2.0", "style": "polyphony",
        "terms": "GPL-2 (copyleft)", "attribution": "Laura E. Conrad, 1999"},
    "luca": {
        "licence": "CC BY-SA 3.0", "commercial": True, "share_alike": "cc-by-sa-3.0", "style": "polyphony",
        "terms": "CC BY-SA 3.0 (share-alike)", "attribution": "Michael Scott Cuthbert, 2010"},
    "ciconia": {
        "licence": "CC BY-SA 3.0", "commercial": True, "share_alike": "cc-by-sa-3.0", "style": "polyphony",
        "terms": "CC BY-SA 3.0 (share-alike)", "attribution": f"Johannes Ciconia; {M21}"},
    "beach": {
        "licence": "CC BY-SA", "commercial": True, "share_alike": "cc-by-sa-3.0", "style": "classical",
        "terms": "\"most uses allowed for free (CC-SA-BY)\" (share-alike)",
        "attribution": "engraving by Michael Scott Cuthbert, 2017"},
    "schoenberg": {
        "licence": "unknown", "commercial": False, "share_alike": None, "style": "classical",
        "terms": "20th-century works without a licence note (copyright varies by country)",
        "attribution": f"Arnold Schoenberg; {M21}"},
    "webern": {
        "licence": "unknown", "commercial": False, "share_alike": None, "style": "classical",
        "terms": "20th-century work without a licence note (copyright varies by country)",
        "attribution": f"Anton Webern; {M21}"},
}


class CardError(Exception):
    """Input the card cannot be written from (a missing file, an unknown source, a corpus that differs)."""


def weights_licence(sources: list[str]) -> tuple[str, str]:
    """``(license, reason)`` of weights trained on ``sources``, in the form ``musegen.provenance`` reads.

    ``non-commercial`` when one source is not free for commercial use; else the share-alike
    licence the sources impose (one at most); else ``mit`` (musegen's own).
    """
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise CardError(f"no licence entry for source(s) {', '.join(map(repr, unknown))}: add each to SOURCES "
                        "in scripts/write_model_card.py after reading its terms")
    closed = [s for s in sources if not SOURCES[s]["commercial"]]
    if closed:
        verb = "is" if len(closed) == 1 else "are"
        return "non-commercial", f"{', '.join(f'`{s}`' for s in closed)} {verb} not free for commercial use"
    share = sorted({SOURCES[s]["share_alike"] for s in sources if SOURCES[s]["share_alike"]})
    if len(share) > 1:
        raise CardError(f"the sources carry different share-alike terms ({', '.join(share)}): no one licence "
                        "meets them all; leave some of them out of training")
    if share:
        which = [s for s in sources if SOURCES[s]["share_alike"] == share[0]]
        return share[0], f"{', '.join(f'`{s}`' for s in which)} {'is' if len(which) == 1 else 'are'} share-alike"
    return "mit", "every source free for any use"


def safetensors_params(path: Path) -> tuple[int, set[str], int]:
    """``(parameters, dtypes, bytes)`` of a safetensors file, read from its header (no torch)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as exc:
        raise CardError(f"{path}: not a readable safetensors file ({exc})") from None
    header.pop("__metadata__", None)
    params = sum(math.prod(t["shape"]) for t in header.values())
    return params, {str(t["dtype"]) for t in header.values()}, path.stat().st_size


def model_id(config: dict) -> str:
    """``musegen-symbolic-v<tokenizer version>-<preset's initial, else d><d_model>``."""
    version = int(config.get("tokenizer_version") or 1)
    preset = config.get("preset") or "d"
    return f"musegen-symbolic-v{version}-{preset[0]}{config['model']['d_model']}"


def training_command(config: dict) -> str:
    """The ``scripts/train_symbolic.py`` command line that the config's ``train`` table records."""
    import importlib.util

    # the presets of the training script itself (loaded by path: scripts/ is no package)
    spec = importlib.util.spec_from_file_location("train_symbolic", ROOT / "scripts" / "train_symbolic.py")
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    presets = trainer.PRESETS

    t, m = config.get("train", {}), config["model"]
    preset = config.get("preset")
    version = int(config.get("tokenizer_version") or 1)
    args = ["scripts/train_symbolic.py", "--data", "data/"]
    shape = {"n_layer": 4, "n_head": 4, "d_model": 256, "context": 512, **presets.get(preset or "", {})}
    if preset:
        args += ["--preset", preset]
    for key, flag in (("n_layer", "--layers"), ("d_model", "--d-model"), ("n_head", "--heads"),
                      ("context", "--context")):
        if m[key] != shape[key]:
            args += [flag, str(m[key])]
    if version != (3 if preset else 1):
        args += ["--tokenizer-version", str(version)]
    if t.get("device", "cpu") != "cpu":
        args += ["--device", str(t["device"])]
    minutes = float(t.get("time_limit_s", 0)) / 60
    fitted = t.get("fit_to_time", True) and minutes > 0
    if not fitted:
        args += ["--steps", str(t.get("steps"))]
    args += ["--minutes", f"{minutes:g}", "--batch", str(t.get("batch")), "--lr", f"{t.get('lr'):g}",
             "--warmup", str(t.get("warmup")), "--dropout", f"{m['dropout']:g}",
             "--eval-every", str(t.get("eval_every")), "--seed", str(t.get("seed", 0)),
             "--threads", str(t.get("threads"))]
    if t.get("bf16") is False:
        args.append("--no-bf16")
    if t.get("save_every"):
        args += ["--state", "runs/state", "--save-every", str(t["save_every"])]
        if t.get("reschedule"):
            args += ["--resume", "--reschedule"]
    return " ".join(args)


def _styles(folder: Path) -> list[str]:
    try:
        raw = json.loads((folder / "tokenizer.json").read_text())
        cfg = raw.get("config", {})
        cfg = ast.literal_eval(cfg) if isinstance(cfg, str) else cfg  # miditok saves its config as a repr
        return [t[len("STYLE_"):] for t in cfg.get("special_tokens", []) if str(t).startswith("STYLE_")]
    except (OSError, ValueError, SyntaxError, AttributeError):
        return []


def _corpus_counts(data: Path, config: dict) -> tuple[dict[str, dict], dict[str, str], dict[str, int]]:
    """``({source: {"pieces", "tokens"}}, {source: style}, twice)`` of the training split the config was
    trained on; ``twice`` maps each piece id the corpus holds more than once (one work exported from two
    files of the corpus) to how often it occurs, each counted in the pieces."""
    import numpy as np

    from musegen.engines.symbolic.data import TokenCorpus

    version = min(int(config.get("tokenizer_version") or 1), 2)
    path = data / ("tokens_train.npz" if version == 1 else f"tokens_v{version}_train.npz")
    if not path.is_file():
        raise CardError(f"--data {data}: no {path.name} (the tokenized training split; "
                        "scripts/train_symbolic.py --tokenize-only writes it)")
    corpus = TokenCorpus.load(path)
    want = config.get("data", {})
    if want.get("train_pieces") is not None and (len(corpus), len(corpus.ids)) != (
            want["train_pieces"], want.get("train_tokens", len(corpus.ids))):
        raise CardError(f"{path}: {len(corpus):,} pieces and {len(corpus.ids):,} tokens, but the checkpoint was "
                        f"trained on {want['train_pieces']:,} and {want.get('train_tokens', 0):,}: "
                        "not the corpus it learned from")
    styles = _style_names(version)
    lengths = np.diff(corpus.offsets)
    counts: dict[str, dict] = {}
    seen: dict[str, dict[str, int]] = {}
    for name, n, code in zip(corpus.names, lengths, corpus.style):
        source = name.split("/")[0]
        row = counts.setdefault(source, {"pieces": 0, "tokens": 0})
        row["pieces"] += 1
        row["tokens"] += int(n)
        style = styles[int(code)] if 0 <= int(code) < len(styles) else str(int(code))
        seen.setdefault(source, {}).setdefault(style, 0)
        seen[source][style] += 1
    style_of = {s: max(sorted(v), key=v.get) for s, v in seen.items()}
    occurs: dict[str, int] = {}
    for name in corpus.names:
        occurs[name] = occurs.get(name, 0) + 1
    return counts, style_of, {name: n for name, n in sorted(occurs.items()) if n > 1}


def _style_names(version: int) -> tuple[str, ...]:
    from musegen.engines.symbolic.tokens import STYLES_BY_VERSION

    return STYLES_BY_VERSION[version]


def _held_out(config: dict, split_file: Path) -> list[str]:
    try:
        pieces = json.loads(split_file.read_text()).get("pieces", {})
    except (OSError, ValueError):
        pieces = {}
    out = []
    names = {"monteverdi": "Monteverdi's madrigals", "lieder/Brahms,_Johannes": "Brahms's songs"}
    for held in config.get("data", {}).get("held_out", []):
        # a collection, or a prefix of piece ids (one artist of a larger source), as prepare_data.py holds them
        n = sum(1 for pid in pieces if (pid.startswith(held) if "/" in held else pid.split("/")[0] == held))
        label = names.get(held, held)
        out.append(f"{label} (`{held}`, {n:,} pieces)" if n else f"{label} (`{held}`)")
    return out


def _eval_section(path: Path | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if path is None:
        return lines + ["Not measured for this checkpoint yet: `scripts/eval_symbolic.py`, `scripts/eval_nll.py`,",
                        "`scripts/eval_style.py` and `scripts/eval_accompany.py` measure it; rerun this script",
                        "with `--eval FILE` (a JSON dict of name -> lines) to write their numbers here.", ""]
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CardError(f"--eval {path}: not a readable JSON file ({exc})") from None
    if not isinstance(table, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in table.values()):
        raise CardError(f"--eval {path}: want a JSON object of name -> text lines (a string or a list of strings)")
    for name, text in table.items():
        lines += [f"### {name}", ""] + ([text] if isinstance(text, str) else list(text)) + [""]
    return lines


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _what_it_learned(config: dict, counts: dict[str, dict]) -> list[str]:
    extra = [str(t) for t in config.get("extra_tokens", [])]
    kinds = {p: [t for t in extra if t.startswith(p)] for p in ("DENS_", "POLY_", "PART_", "ADD_", "INFILL_")}
    out = ["## What it learned", ""]
    if config.get("drums"):
        drums = counts.get("groove", {}).get("pieces", 0)
        src = f"Groove's {drums:,} human drum performances" if drums else "the drum tracks of its sources"
        out.append(f"- **Drums**: drum parts (GM drum notes, written to channel 10), from {src}; a "
                   "preset's drums can come from the model, the procedural drummer stays as a fallback "
                   "and by option.")
    else:
        out.append("- **No drums**: its corpus kept no drum parts; the procedural drummer plays them.")
    if kinds["DENS_"] or kinds["POLY_"] or [t for t in kinds["PART_"] if t != "PART_START"]:
        parts = [t for t in kinds["PART_"] if t != "PART_START"]
        out.append(f"- **Controls** after `BOS STYLE KEY`: note density (`DENS_0`-`DENS_{len(kinds['DENS_']) - 1}`, "
                   f"notes per bar), polyphony (`POLY_0`-`POLY_{len(kinds['POLY_']) - 1}`, notes per onset) and "
                   f"the parts that play ({len(parts)} `PART_p` tokens: drums and each GM family); each kind "
                   "was left out of some training windows, so a user sets only what they want "
                   "(`--option density=0.7`).")
    if "INFILL_HOLE" in extra:
        out.append("- **Bar infilling**: `before INFILL_HOLE after INFILL_START gap INFILL_END`: it rewrites "
                   "bars k..m knowing the bars before *and after* them (`musegen infill`).")
    if kinds["ADD_"] and "PART_START" in extra:
        out.append("- **Part infilling**: `ADD_p` among the controls, the passage without part p, "
                   "`PART_START`, then part p alone over the same bars: it adds a bass, drums, chords or a "
                   "counter-melody to a sketch knowing its other parts (`musegen accompany`).")
    if not extra:
        out.append("- **No controls and no infilling**: it only continues a sequence left to right.")
    return out + [""]


def render(folder: Path, data: Path, *, split_file: Path = SPLIT_FILE, eval_file: Path | None = None,
           card_id: str | None = None, command: str | None = None) -> str:
    """The text of ``folder``'s model card."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CardError(f"{folder}: no readable config.json ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CardError(f"{folder}/config.json: no 'model' table")
    m, t, d = config["model"], config.get("train", {}), config.get("data", {})
    counts, style_of, twice = _corpus_counts(data, config)
    sources = [str(s) for s in d.get("sources") or sorted(counts)]
    missing = [s for s in sources if s not in counts]
    if missing:
        raise CardError(f"config data.sources names {', '.join(missing)}, which the corpus in {data} lacks")
    licence, why = weights_licence(sources)
    card_id = card_id or model_id(config)
    params, dtypes, size = safetensors_params(folder / "model.safetensors")
    extra = [str(x) for x in config.get("extra_tokens", [])]
    vocab = int(m["vocab_size"])
    remi = vocab - len(extra)
    version = int(config.get("tokenizer_version") or 1)
    styles = _styles(folder)
    pieces_total = sum(counts[s]["pieces"] for s in sources)
    tokens_total = sum(counts[s]["tokens"] for s in sources)
    seen = int(config.get("train_tokens", 0))
    step = int(config.get("step", 0))
    for s in sources:
        if SOURCES[s]["style"] != style_of.get(s, SOURCES[s]["style"]):
            print(f"write_model_card: note: {s}'s pieces have style {style_of[s]!r}, the table says "
                  f"{SOURCES[s]['style']!r}; the card gives the corpus's", file=sys.stderr)

    front = ["---", f"id: {card_id}", f"license: {licence}", f"training_sources: {', '.join(sources)}",
             "training_pieces: " + ", ".join(f"{s} {counts[s]['pieces']}" for s in sources)]
    if twice:  # the split file has each id once: these sources count more pieces than their ids
        extra_ids: dict[str, int] = {}
        for name, n in twice.items():
            extra_ids[name.split("/")[0]] = extra_ids.get(name.split("/")[0], 0) + n - 1
        front.append("training_duplicates: " + ", ".join(f"{s} {n}" for s, n in sorted(extra_ids.items())))
    front += ["---", ""]
    out = front + [f"# Model card: the symbolic model `{card_id}`", "",
                   "The weights in this folder (`model.safetensors`, `config.json`, `tokenizer.json`,",
                   "`train_log.jsonl`, `loss.png`) are a checkpoint of musegen's `symbolic` engine. Every result",
                   "it makes records this card in its sidecar (`engine.info.model_card`, `model_card_id`,",
                   "`training_sources`, and the provenance block's `licence`). Written by",
                   "`scripts/write_model_card.py` from the checkpoint and its training data.", ""]
    credit = "the CC BY sources ask for credit, which this card gives: keep it with the weights."
    if licence == "non-commercial":
        banner = (f"**Licence: not for commercial use.** These weights were trained on sources whose terms do not "
                  f"allow it: {why}. See the table below.")
    elif licence == "mit":
        banner = ("**Licence: MIT**, like musegen. Every training source is free for any use, commercial use "
                  f"included; {credit}")
    else:
        banner = (f"**Licence: {licence}**: commercial use allowed, with credit; adaptations of the weights "
                  f"(fine-tunes) go under the same terms, since {why}. The other sources are free for any use; "
                  f"{credit}")
    out += ["> " + line for line in textwrap.wrap(banner, 100, break_on_hyphens=False)] + [""]

    passes = seen / tokens_total if tokens_total else 0.0
    dtype = "/".join(sorted(dtypes)).lower().replace("f16", "fp16").replace("f32", "fp32")
    style_list = f"; styles {', '.join(f'`{s}`' for s in styles)}" if styles else ""
    vocab_text = (f"{vocab} tokens: miditok REMI {remi} with canonical parts and a `BOS STYLE_x KEY_y` prefix "
                  f"(tokenizer version {version}{style_list})")
    if extra:
        vocab_text += (f" + {len(extra)} of musegen's own (controls `DENS`, `POLY`, `PART`; infilling `ADD`, "
                       "`INFILL_HOLE`, `INFILL_START`, `INFILL_END`, `PART_START`: `layout.py`)")
    steps_text = (f"{step + 1:,} steps of {t.get('batch', '?')} windows, {seen:,} tokens "
                  f"(about {passes:.2g} passes over the {tokens_total:,}-token training corpus)")
    if t.get("steps") and step + 1 < int(t["steps"]):
        steps_text += f"; the best checkpoint by validation loss so far, of a {int(t['steps']):,}-step schedule"
    device = t.get("device", "cpu")
    threads = f" ({t['threads']} threads)" if device == "cpu" and t.get("threads") else ""
    opt = (f"{'bf16 autocast, ' if t.get('bf16') else ''}seed {t.get('seed', 0)}, AdamW, weight decay "
           f"{t.get('weight_decay', '?')}, cosine {t.get('lr', 0):g} -> {t.get('min_lr', 0):g} after "
           f"{t.get('warmup', '?')} warm-up steps, on {device}{threads}")
    held = _held_out(config, split_file)
    valid_pieces = f"; {d['valid_pieces']:,} validation pieces" if isinstance(d.get("valid_pieces"), int) else ""
    out += ["## The model", "", "| | |", "|---|---|",
            ("| architecture | decoder-only transformer, pre-norm blocks, rotary positions, tied embeddings "
             "(`model.py`) |"),
            (f"| shape | {m['n_layer']} layers, d_model {m['d_model']}, {m['n_head']} heads, "
             f"context {m['context']} tokens, dropout {m.get('dropout', 0):g} |"),
            f"| parameters | {params:,} ({dtype} safetensors, {size / 1e6:.1f} MB) |",
            f"| vocabulary | {_cell(vocab_text)} |",
            f"| training | `{command or training_command(config)}`; {opt} |",
            f"| steps, tokens seen | {steps_text} |",
            f"| validation loss | {float(config['valid_loss']):.3f} nats/token (at step {step:,}{valid_pieces}) |",
            (f"| held out | {'; '.join(held) if held else 'none'}: never trained on (the unseen \"artists\" "
             "of `scripts/eval_style.py`) |"), ""]

    out += ["## Training data", "",
            f"{pieces_total:,} pieces, {tokens_total:,} REMI tokens in the training split, split by piece",
            "(`scripts/data_split.json`: about 90 % train, 5 % valid, 5 % test by a hash of the piece id;",
            "rerunning keeps every assignment). Collections whose terms are not free for any use are left",
            "out (`scripts/prepare_data.py`'s `EXCLUDED`, the split file's `excluded_collections`). The",
            "sources, with their terms as their own notes state them:", "",
            ("| source | pieces (train) | tokens (train) | style token | licence / terms | commercial use "
             "| attribution |"),
            "|---|---|---|---|---|---|---|"]
    for s in sorted(sources, key=lambda s: (-counts[s]["pieces"], s)):
        e = SOURCES[s]
        use = "yes" if e["commercial"] else "**no**"
        if e["share_alike"]:
            use += f" (share-alike: {e['share_alike']})"
        out.append(f"| `{s}` | {counts[s]['pieces']:,} | {counts[s]['tokens']:,} | {style_of.get(s, e['style'])} | "
                   f"{_cell(e['licence'])}: {_cell(e['terms'])} | {use} | {_cell(e['attribution'])} |")
    if twice:
        out += ["", f"{len(twice)} piece ids occur more than once in the training split (one work exported from "
                "two files of its collection, e.g. a Humdrum and a MusicXML encoding; the front matter's "
                "`training_duplicates`), each counted as often in the pieces above: "
                + ", ".join(f"`{name}` ({n}x)" for name, n in twice.items()) + "."]
    out += ["", "\"music21 corpus notice\": `music21/corpus/license.txt` says the encodings are distributed with",
            "the permission of their encoders, are out of copyright in the United States or licensed for use,",
            "and \"may not be used for commercial uses or have other restrictions\" where a collection or file",
            "says so; the collections marked so carry no such note. The music21 corpus: Cuthbert and Ariza,",
            "*music21: a toolkit for computer-aided musicology and symbolic music data*, ISMIR 2010.", ""]

    out += _what_it_learned(config, counts)
    out += ["## Intended use and limits", "",
            "- Intended: continuing, generating, infilling and accompanying short symbolic sketches inside",
            "  musegen on a laptop CPU, and fine-tuning on a user's files (`musegen style learn`), in its styles.",
            f"- Small: {params / 1e6:.1f} M parameters and a {m['context']}-token context (a sliding window past it),",
            "  far from the 100 M+ of the research models (the Anticipatory Music Transformer, MIDI-GPT).",
            "- Western tonal, folk, pop and early-1900s piano idioms only; it has never seen most of the",
            "  world's music.",
            f"- Licence: `{licence}` ({why}); the provenance of every result says it.", ""]
    out += _eval_section(eval_file)
    return "\n".join(out).rstrip("\n") + "\n"


def write_card(folder: Path, text: str, out: Path | None = None) -> Path:
    """Write ``text`` to ``out`` (default ``folder/MODEL_CARD.md``) through a temporary file."""
    path = out or folder / CARD
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path, default=WEIGHTS, help="checkpoint folder (default: shipped)")
    ap.add_argument("--data", type=Path, default=ROOT / "data", help="folder of the tokenized splits")
    ap.add_argument("--split", type=Path, default=SPLIT_FILE, help="the split file (held-out counts)")
    ap.add_argument("--eval", type=Path, help="JSON object name -> text lines for the Evaluation section")
    ap.add_argument("--id", help="the card's id (default musegen-symbolic-v<version>-<preset initial><d_model>)")
    ap.add_argument("--command", help="the training command to record (default: rebuilt from config.json)")
    ap.add_argument("--out", type=Path, help="write here instead of FOLDER/MODEL_CARD.md")
    args = ap.parse_args(argv)
    try:
        text = render(args.folder, args.data, split_file=args.split, eval_file=args.eval, card_id=args.id,
                      command=args.command)
        path = write_card(args.folder, text, args.out)
    except (CardError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
