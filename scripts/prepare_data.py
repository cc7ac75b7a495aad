"""Collect the training corpus for the embedded symbolic model.

    python scripts/prepare_data.py --out data/ [--workers 1] [--limit N] [--sources pop909,groove,...]

Sources (all under ``../shared/data`` except music21's corpus; licences in
:data:`SOURCES` and in ``src/musegen/engines/symbolic/weights/MODEL_CARD.md``)
------------------------------------------------------------------------------
- ``pop909``: songs 001-818, bar lines from ``beat_midi.txt`` (style ``pop``).
- ``groove``: Groove MIDI drum performances, kept as drums, split from its
  ``info.csv`` (style ``drums``; tokenizer version 2).
- ``pianolatron``: piano rolls as punched, ``midi/note/`` (style ``piano``).
- ``lieder``: OpenScore Lieder, MusicXML via music21 (style ``lieder``).
- ``irish-cre``: Irish dance tunes (style ``folk``).
- ``openewld``: lead sheets, MusicXML via music21, their chord symbols
  realised as a chord part and saved as labels (style ``leadsheet``).
- ``music21``: the corpus that ships with music21, piece by piece, leaving
  out :data:`EXCLUDED` (collections not free for any use).

Held out of training entirely (the unseen "artists" for style learning):
**Monteverdi's madrigals** (music21's ``monteverdi``) and **Brahms's songs**
(``lieder/Brahms,_Johannes``).

Outputs in ``--out``: ``midi/<source>/<piece>.mid`` (converted pieces),
``labels/openewld/<piece>.json`` (chord symbols), ``pieces.jsonl`` (one row
per piece: id, collection, style, path) and ``export_log.jsonl`` (one row per
converted input file, so an interrupted run resumes where it stopped).  The
split by piece lives in ``scripts/data_split.json`` (committed); rerunning
keeps existing assignments, so evaluation never sees a training piece.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
POP909 = SHARED / "pop909"
SPLIT_FILE = ROOT / "scripts" / "data_split.json"
#: whole collections held out of training (style-learning targets)
HELD_OUT = {"monteverdi"}
#: piece-id prefixes held out the same way (one artist of a larger source)
HELD_OUT_PREFIXES = ("lieder/Brahms,_Johannes",)
RETRY_FAILED = False

#: every source: its licence (checked in its own licence file) and attribution
SOURCES = {
    "pop909": {"licence": "MIT", "attribution": "Wang et al., POP909, ISMIR 2020", "since": 1},
    "music21": {"licence": "per collection (see EXCLUDED); music21 corpus notice",
                "attribution": "the music21 corpus (Cuthbert and Ariza), see MODEL_CARD.md", "since": 1},
    "groove": {"licence": "CC BY 4.0", "since": 2,
               "attribution": "Gillick et al., Learning to Groove with Inverse Sequence Transformations, "
                              "ICML 2019 (Magenta Groove MIDI Dataset)"},
    "pianolatron": {"licence": "MIT (repository)", "since": 2,
                    "attribution": "Stanford University Libraries, Pianolatron"},
    "lieder": {"licence": "CC0 1.0", "attribution": "OpenScore Lieder", "since": 2},
    "irish-cre": {"licence": "CC BY 4.0 (README) / Unlicense (LICENSE.md)", "since": 2,
                  "attribution": "Bill Black's Irish tune archive; Polifonia project (Ceol Rince na hEireann)"},
    "openewld": {"licence": "public domain scores; MIT (repository)", "since": 2,
                 "attribution": "F. Simonetta, OpenEWLD (from the Wikifonia archive)"},
}
STYLE_OF_SOURCE = {"pop909": "pop", "groove": "drums", "pianolatron": "piano", "lieder": "lieder",
                   "irish-cre": "folk", "openewld": "leadsheet"}

STYLE_OF = {
    "bach": "chorale",
    "palestrina": "polyphony", "trecento": "polyphony", "josquin": "polyphony", "ciconia": "polyphony",
    "luca": "polyphony", "lusitano": "polyphony", "monteverdi": "polyphony",
    "ryansMammoth": "folk", "oneills1850": "folk", "essenFolksong": "folk", "airdsAirs": "folk",
    "miscFolk": "folk", "nottingham-dataset": "folk",
}
#: not music to learn from (exercises, demos, two lead sheets of which one is "All Rights Reserved")
SKIP = {"demos", "theoryExercises", "leadSheet"}
#: music21 collections (or files) left out because their terms are not free for any use; the
#: reasons come from the corpus's own notes (music21/corpus/license.txt, <coll>/license.txt and
#: the rights fields inside the files)
EXCLUDED = {
    "essenFolksong": "corpus/essenFolksong/license.txt: permission for non-commercial distribution and "
                     "use only; 'legal status ... unclear'",
    "palestrina": "every file: 'Copyright 2000, John Miller. Rights to all derivative electronic formats "
                  "reserved. Refer to licensing agreement' (Humdrum/CCARH); the agreement is not shipped",
    "bach/*.krn": "3 Humdrum files: 'Copyright 1994, CCARH. Rights to all derivative electronic formats "
                  "reserved' (the 408 MusicXML chorales carry no such note)",
    "josquin": "GPL-2 (Laura E. Conrad, 1999): copyleft terms an MIT-licensed model cannot promise to meet",
    "ciconia": "CC BY-SA 3.0 (share-alike), one piece",
    "luca": "CC BY-SA 3.0 (share-alike), one piece",
    "beach": "'most uses allowed for free (CC-SA-BY)': share-alike, one piece",
    "schoenberg": "20th-century works without a licence note (copyright varies by country)",
    "webern": "20th-century work without a licence note (copyright varies by country)",
}


def _excluded(coll: str, path: str) -> bool:
    return coll in EXCLUDED or (coll == "bach" and path.endswith(".krn"))


def _collection(path: str, base: str) -> str:
    return os.path.relpath(path, base).split(os.sep)[0]


# ----------------------------------------------------------------------------- conversion
def _realize_chords(score) -> list[dict]:
    """Add a chord part realising the score's chord symbols; return the symbols as labels.

    music21 writes chord symbols to MIDI as nothing, so a lead sheet would
    teach melody only.  Each symbol sounds as a closed chord around C4 until
    the next one (or the end).  Labels: ``[{"offset": quarters, "figure",
    "root": pitch class, "pcs": [pitch classes]}]``.
    """
    from music21 import chord, harmony, instrument, stream

    flat = score.flatten()
    symbols = [cs for cs in flat.getElementsByClass(harmony.ChordSymbol) if cs.pitches]
    labels = []
    if not symbols:
        return labels
    end = float(score.highestTime)
    part = stream.Part()
    part.insert(0, instrument.Piano())
    for i, cs in enumerate(symbols):
        start = float(cs.offset)
        stop = float(symbols[i + 1].offset) if i + 1 < len(symbols) else end
        pcs = sorted({p.pitchClass for p in cs.pitches})
        labels.append({"offset": start, "figure": cs.figure, "root": cs.root().pitchClass, "pcs": pcs})
        if stop <= start:
            continue
        midi = sorted(48 + pc if pc >= 5 else 60 + pc for pc in pcs)  # F3..E4
        c = chord.Chord(midi, quarterLength=stop - start)
        c.volume.velocity = 64
        part.insert(start, c)
    # music21's MIDI writer expands repeats part by part and needs measures in each
    meters = score.parts[0].recurse().getElementsByClass("TimeSignature") if score.parts else []
    part.makeMeasures(meterStream=stream.Stream(list(meters)[:1]) if len(meters) else None, inPlace=True)
    part.makeTies(inPlace=True)
    score.insert(0, part)
    return labels


def _strip_repeats(score) -> None:
    """Remove repeat bar lines, brackets and jumps (the MIDI writer would expand them and fail)."""
    from music21 import bar, repeat, spanner, stream

    for m in score.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, None)
    for el in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        site = el.activeSite
        if site is not None:
            site.remove(el)


def _export_one(args: tuple[str, str, str, str, str]) -> list[dict]:
    """Parse one score file (a score or an opus) and write each piece as MIDI."""
    path, base, out, source, style = args
    import music21

    warnings.simplefilter("ignore")
    coll = source if source != "music21" else _collection(path, base)
    # music21 ids keep the collection in the name too ("bach/bach__bwv1.6"), as the split file has them
    rel = os.path.splitext(os.path.relpath(path, base))[0].replace(os.sep, "__")
    rows = []
    try:
        parsed = music21.converter.parse(path)
    except Exception as exc:  # noqa: BLE001 - corpus files fail in many ways; log and go on
        return [{"error": f"{path}: parse: {type(exc).__name__}: {exc}"[:300]}]
    scores = list(parsed.scores) if isinstance(parsed, music21.stream.Opus) else [parsed]
    for i, sc in enumerate(scores):
        pid = f"{coll}/{rel}" + (f"__{i:04d}" if len(scores) > 1 else "")
        dest = Path(out) / "midi" / f"{pid}.mid"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                sc = sc.expandRepeats()
            except Exception:  # noqa: BLE001 - malformed repeats: play the score once as written
                _strip_repeats(sc)
            row = {"id": pid, "collection": coll, "style": style or STYLE_OF.get(coll, "classical"),
                   "path": str(dest.relative_to(out))}
            if source == "openewld":
                labels = _realize_chords(sc)
                lab = Path(out) / "labels" / f"{pid}.json"
                lab.parent.mkdir(parents=True, exist_ok=True)
                lab.write_text(json.dumps({"chords": labels}))
                row["labels"] = str(lab.relative_to(out))
            tmp = dest.with_name(dest.name + ".part")
            sc.write("midi", fp=str(tmp))
            os.replace(tmp, dest)
            rows.append(row)
        except Exception as exc:  # noqa: BLE001
            rows.append({"error": f"{pid}: export: {type(exc).__name__}: {exc}"[:300]})
    return rows


def _convert(name: str, files: list[tuple[str, str, str]], out: Path, workers: int) -> list[dict]:
    """Convert score files to MIDI, resuming from ``export_log.jsonl``.

    ``files``: ``(path, base, style)``; ``style`` may be empty (by collection).  Files that
    failed before are tried again when ``RETRY_FAILED`` is set (``--retry-failed``).
    """
    retry_failed = RETRY_FAILED
    log_path = out / "export_log.jsonl"
    done: dict[str, list[dict]] = {}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if not (retry_failed and any("error" in r for r in row["rows"])):
                done[row["file"]] = row["rows"]
    rows = [r for p, _, _ in files if p in done for r in done[p]]
    todo = [(p, b, str(out), name, s) for p, b, s in files if p not in done]
    errors = sum(1 for r in rows if "error" in r)
    t0 = time.time()
    print(f"{name}: {len(files)} files, {len(files) - len(todo)} converted earlier", file=sys.stderr, flush=True)
    if workers > 1:
        from multiprocessing import Pool

        pool = Pool(workers)
        results = pool.imap(_export_one, todo)
    else:
        pool, results = None, map(_export_one, todo)
    with open(log_path, "a") as logf:
        for i, (task, res) in enumerate(zip(todo, results)):
            logf.write(json.dumps({"file": task[0], "rows": res}) + "\n")
            logf.flush()
            rows += res
            errors += sum(1 for r in res if "error" in r)
            if i % 50 == 0:
                print(f"  {name}: {i}/{len(todo)} files, {len(rows)} pieces, {errors} errors, "
                      f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if pool is not None:
        pool.close()
    good = [r for r in rows if "error" not in r]
    print(f"{name}: {len(good)} pieces, {errors} failed, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return good


def export_music21(out: Path, workers: int, limit: int | None, only: set[str] | None = None) -> list[dict]:
    import music21

    paths = [str(p) for p in music21.corpus.getPaths()]
    base = os.path.commonpath(paths)
    todo = [p for p in paths if _collection(p, base) not in SKIP and not _excluded(_collection(p, base), p)
            and (not only or _collection(p, base) in only)]
    # big opus files first so a pool's tail is short
    todo.sort(key=lambda p: (-os.path.getsize(p), p))
    if limit:
        todo = todo[:limit]
    return _convert("music21", [(p, base, "") for p in todo], out, workers)


def _score_base(source: str) -> Path:
    return SHARED / source / ("scores" if source == "lieder" else "dataset")


def _score_files(source: str) -> list[str]:
    return sorted(str(p) for p in _score_base(source).rglob("*.mxl"))


def _score_id(path: str, source: str) -> str:
    """The piece id :func:`_export_one` gives a one-score file (without the source prefix)."""
    return os.path.splitext(os.path.relpath(path, _score_base(source)))[0].replace(os.sep, "__")


def export_scores(source: str, out: Path, workers: int, limit: int | None) -> list[dict]:
    """A MusicXML source (lieder, openewld) converted through music21."""
    base = _score_base(source)
    files = _score_files(source)
    if limit:
        files = files[:limit]
    return _convert(source, [(p, str(base), STYLE_OF_SOURCE[source]) for p in files], out, workers)


def _pop909_bars(folder: Path, dest: Path) -> bool:
    """Write a POP909 song with its bar lines from ``beat_midi.txt``.

    The files declare 1/4 or 2/4 over music in 4/4 (or 3/4) and often start
    with a pickup.  The meter is the usual count of beats between downbeats
    (third column 1), and every event is shifted so the first downbeat falls
    on a bar line.
    """
    from symusic import Score, TimeSignature

    beats = []
    for line in (folder / "beat_midi.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) >= 3:
            beats.append((float(parts[0]), float(parts[2]) == 1.0))
    downs = [i for i, (_, d) in enumerate(beats) if d]
    if len(downs) < 2:
        return False
    per_bar = Counter(b - a for a, b in zip(downs, downs[1:])).most_common(1)[0][0]
    if per_bar not in (2, 3, 4, 6):
        return False
    score = Score(str(folder / f"{folder.name}.mid"))
    tpq = score.ticks_per_quarter
    first = _seconds_to_ticks(score, beats[downs[0]][0])
    bar = per_bar * tpq
    # snap the first downbeat to the beat grid, then move it onto a bar line
    first = round(first / (tpq / 4)) * (tpq // 4)
    shift = (-first) % bar
    if shift:
        score = score.shift_time(shift)
    score.time_signatures.clear()
    score.time_signatures.append(TimeSignature(0, per_bar, 4))
    tmp = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(tmp))
    os.replace(tmp, dest)
    return True


def _seconds_to_ticks(score, t: float) -> int:
    tempos = sorted(score.tempos, key=lambda x: x.time) or []
    tpq = score.ticks_per_quarter
    tick, sec, mspq = 0, 0.0, 500_000
    for tempo in tempos:
        dt = (tempo.time - tick) * mspq / 1e6 / tpq
        if sec + dt > t:
            break
        sec += dt
        tick, mspq = tempo.time, tempo.mspq
    return int(round(tick + (t - sec) * 1e6 / mspq * tpq))


def collect_pop909(out: Path) -> list[dict]:
    rows = []
    for d in sorted(POP909.iterdir()):
        mid = d / f"{d.name}.mid"
        if not mid.is_file():
            continue
        dest = out / "midi" / "pop909" / f"{d.name}.mid"
        ok = dest.exists() or ((d / "beat_midi.txt").is_file() and _pop909_bars(d, dest))
        rows.append({"id": f"pop909/{d.name}", "collection": "pop909", "style": "pop",
                     "path": str(dest.relative_to(out)) if ok else str(mid)})
    return rows


def collect_groove(out: Path) -> tuple[list[dict], dict[str, str]]:
    """Groove performances and the dataset's own split (train/validation/test)."""
    base = SHARED / "groove"
    rows, split = [], {}
    with open(base / "info.csv", newline="") as fh:
        for rec in csv.DictReader(fh):
            path = base / rec["midi_filename"]
            if not path.is_file():
                continue
            pid = "groove/" + os.path.splitext(rec["midi_filename"])[0].replace("/", "__")
            rows.append({"id": pid, "collection": "groove", "style": "drums", "path": str(path),
                         "meter": rec["time_signature"], "beat_type": rec["beat_type"], "bpm": int(rec["bpm"]),
                         "groove_style": rec["style"]})
            split[pid] = {"train": "train", "validation": "valid", "test": "test"}[rec["split"]]
    return rows, split


def collect_midi(source: str, folder: Path) -> list[dict]:
    """A folder of MIDI files used as they are."""
    return [{"id": f"{source}/{p.stem}", "collection": source, "style": STYLE_OF_SOURCE[source], "path": str(p)}
            for p in sorted(folder.glob("*.mid"))]


# ----------------------------------------------------------------------------- split
def is_held_out(pid: str, collection: str) -> bool:
    return collection in HELD_OUT or pid.startswith(HELD_OUT_PREFIXES)


def assign(pid: str, collection: str) -> str:
    """Deterministic split by piece: 90% train, 5% valid, 5% test; held-out pieces apart."""
    if is_held_out(pid, collection):
        return "heldout"
    h = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 5 else "valid" if h < 10 else "train"


def write_split(rows: list[dict], given: dict[str, str] | None = None) -> dict:
    """Add ``rows`` to the split file; existing assignments never change.

    ``given``: assignments a source makes itself (Groove's ``info.csv``).
    """
    split = json.loads(SPLIT_FILE.read_text()) if SPLIT_FILE.exists() else {}
    pieces = split.get("pieces", {})
    for r in rows:
        pieces.setdefault(r["id"], (given or {}).get(r["id"]) or assign(r["id"], r["collection"]))
    split = {
        "about": "Split by piece for the symbolic model; held-out pieces never enter training. Pieces of "
                 "excluded collections stay listed (the shipped v1 model was trained on some) but are no "
                 "longer exported.",
        "held_out_collections": sorted(HELD_OUT),
        "held_out_prefixes": list(HELD_OUT_PREFIXES),
        "excluded_collections": EXCLUDED,
        "pieces": dict(sorted(pieces.items())),
    }
    tmp = SPLIT_FILE.with_name(SPLIT_FILE.name + ".part")
    tmp.write_text(json.dumps(split, indent=0, ensure_ascii=False) + "\n")
    os.replace(tmp, SPLIT_FILE)
    return split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, help="only the first N files of each converted source (smoke runs)")
    ap.add_argument("--sources",
                    help=f"comma-separated sources to collect (default all: {','.join(SOURCES)}; "
                         "with --only: music21)")
    ap.add_argument("--only", help="comma-separated music21 collections to export (e.g. bach,airdsAirs)")
    ap.add_argument("--no-split", action="store_true", help="leave scripts/data_split.json as it is")
    ap.add_argument("--retry-failed", action="store_true", help="convert again the files that failed before")
    args = ap.parse_args()
    global RETRY_FAILED
    RETRY_FAILED = args.retry_failed
    only = set(args.only.split(",")) if args.only else None
    wanted = [s.strip() for s in (args.sources or ("music21" if only else ",".join(SOURCES))).split(",")
              if s.strip()]
    bad = [s for s in wanted if s not in SOURCES]
    if bad:
        ap.error(f"unknown source(s) {', '.join(bad)}; known: {', '.join(SOURCES)}")
    needs_music21 = sorted(set(wanted) & {"lieder", "openewld", "music21"})
    if needs_music21:
        try:
            import music21  # noqa: F401
        except ImportError:
            ap.error(f"{', '.join(needs_music21)} need music21: pip install -e '.[data]'")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    given: dict[str, str] = {}
    # quick sources first, so their rows are listed even if a long conversion is cut short
    if "pop909" in wanted:
        rows += collect_pop909(args.out)
    if "groove" in wanted:
        got, given = collect_groove(args.out)
        rows += got
    if "pianolatron" in wanted:
        rows += collect_midi("pianolatron", SHARED / "pianolatron" / "midi" / "note")
    if "irish-cre" in wanted:
        rows += collect_midi("irish-cre", SHARED / "irish-cre" / "MIDI")
    manifest = args.out / "pieces.jsonl"

    # rows of sources (or music21 collections) this run does not collect stay listed
    kept: list[dict] = []
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            r = json.loads(line)
            source = r["collection"] if r["collection"] in SOURCES else "music21"
            if source not in wanted or (source == "music21" and only and r["collection"] not in only):
                kept.append(r)

    def write_manifest(all_rows: list[dict]) -> None:
        tmp = manifest.with_name(manifest.name + ".part")
        with open(tmp, "w") as fh:
            for r in kept + all_rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, manifest)

    write_manifest(rows)
    if not args.no_split:
        # the scores' ids are known before their (long) conversion: assign them now
        planned = [{"id": f"{source}/{_score_id(p, source)}", "collection": source}
                   for source in ("openewld", "lieder") if source in wanted for p in _score_files(source)]
        write_split(rows + planned, given)
    for source in ("openewld", "lieder"):
        if source in wanted:
            rows += export_scores(source, args.out, args.workers, args.limit)
            write_manifest(rows)
    if "music21" in wanted:
        rows += export_music21(args.out, args.workers, args.limit, only)
        write_manifest(rows)
    split = write_split(rows, given)["pieces"] if not args.no_split else \
        {r["id"]: given.get(r["id"]) or assign(r["id"], r["collection"]) for r in rows}
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{split.get(r['id'], '?')}:{r['collection'] if r['collection'] in SOURCES else 'music21'}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(dict(sorted(counts.items())), indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
