"""Collect the training corpus for the embedded symbolic model.

    python scripts/prepare_data.py --out data/ [--workers 2] [--limit N]

Sources
-------
- POP909 songs in ``../shared/data/pop909`` (style ``pop``).
- The corpus that ships with music21, exported piece by piece to MIDI:
  Bach chorales (``chorale``), Palestrina, Trecento, Josquin and other early
  polyphony (``polyphony``), Essen, Ryan's Mammoth, O'Neill's and other folk
  tunes (``folk``), Beethoven/Mozart/Haydn quartets and other art music
  (``classical``).

Held out of training entirely: **Monteverdi's madrigals** (music21's
``monteverdi`` folder).  They are the unseen "artist" for style learning.

Outputs in ``--out``: ``midi/<collection>/<piece>.mid`` and ``pieces.jsonl``
(one row per exported piece: id, collection, style, path, notes).  The split
by piece lives in ``scripts/data_split.json`` (committed) and is made by
``--write-split``; rerunning keeps existing assignments, so evaluation never
sees a training piece.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POP909 = ROOT.parent / "shared" / "data" / "pop909"
SPLIT_FILE = ROOT / "scripts" / "data_split.json"
HELD_OUT = {"monteverdi"}

STYLE_OF = {
    "bach": "chorale",
    "palestrina": "polyphony", "trecento": "polyphony", "josquin": "polyphony", "ciconia": "polyphony",
    "luca": "polyphony", "lusitano": "polyphony", "monteverdi": "polyphony",
    "ryansMammoth": "folk", "oneills1850": "folk", "essenFolksong": "folk", "airdsAirs": "folk",
    "miscFolk": "folk", "nottingham-dataset": "folk",
}
SKIP = {"demos", "theoryExercises", "leadSheet"}


def _collection(path: str, base: str) -> str:
    return os.path.relpath(path, base).split(os.sep)[0]


def _export_one(args: tuple[str, str, str]) -> list[dict]:
    """Parse one corpus file (a score or an opus) and write each piece as MIDI."""
    path, base, out = args
    import music21

    warnings.simplefilter("ignore")
    coll = _collection(path, base)
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
            except Exception:  # noqa: BLE001 - malformed repeats: keep the score as written
                pass
            sc.write("midi", fp=str(dest))
            rows.append({"id": pid, "collection": coll, "style": STYLE_OF.get(coll, "classical"),
                         "path": str(dest.relative_to(out))})
        except Exception as exc:  # noqa: BLE001
            rows.append({"error": f"{pid}: export: {type(exc).__name__}: {exc}"[:300]})
    return rows


def export_music21(out: Path, workers: int, limit: int | None, only: set[str] | None = None) -> list[dict]:
    import music21

    paths = [str(p) for p in music21.corpus.getPaths()]
    base = os.path.commonpath(paths)
    todo = [p for p in paths if _collection(p, base) not in SKIP and (not only or _collection(p, base) in only)]
    # big opus files first so the pool's tail is short
    todo.sort(key=lambda p: -os.path.getsize(p))
    if limit:
        todo = todo[:limit]
    rows, errors = [], 0
    t0 = time.time()
    with Pool(workers) as pool:
        for i, res in enumerate(pool.imap_unordered(_export_one, [(p, base, str(out)) for p in todo])):
            for r in res:
                if "error" in r:
                    errors += 1
                else:
                    rows.append(r)
            if i % 100 == 0:
                print(f"  {i}/{len(todo)} files, {len(rows)} pieces, {errors} errors, "
                      f"{time.time() - t0:.0f} s", file=sys.stderr)
    print(f"music21: {len(rows)} pieces exported, {errors} failed, {time.time() - t0:.0f} s", file=sys.stderr)
    return rows


def collect_pop909(out: Path) -> list[dict]:
    rows = []
    for d in sorted(POP909.iterdir()):
        mid = d / f"{d.name}.mid"
        if mid.is_file():
            rows.append({"id": f"pop909/{d.name}", "collection": "pop909", "style": "pop", "path": str(mid)})
    return rows


def assign(pid: str, collection: str) -> str:
    """Deterministic split by piece: 90% train, 5% valid, 5% test; held-out collections apart."""
    if collection in HELD_OUT:
        return "heldout"
    h = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 5 else "valid" if h < 10 else "train"


def write_split(rows: list[dict]) -> dict:
    split = json.loads(SPLIT_FILE.read_text()) if SPLIT_FILE.exists() else {}
    pieces = split.get("pieces", {})
    for r in rows:
        pieces.setdefault(r["id"], assign(r["id"], r["collection"]))
    split = {
        "about": "Split by piece for the symbolic model; held-out collections never enter training.",
        "held_out_collections": sorted(HELD_OUT),
        "pieces": dict(sorted(pieces.items())),
    }
    SPLIT_FILE.write_text(json.dumps(split, indent=0) + "\n")
    return split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N corpus files (smoke runs)")
    ap.add_argument("--only", help="comma-separated music21 collections to export (e.g. bach,palestrina)")
    ap.add_argument("--skip-music21", action="store_true", help="reuse an earlier export")
    ap.add_argument("--from-disk", action="store_true",
                    help="list the pieces already exported under OUT/midi (after an interrupted export)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "pieces.jsonl"
    if args.from_disk:
        rows = []
        for f in sorted((args.out / "midi").glob("*/*.mid")):
            coll = f.parent.name
            rows.append({"id": f"{coll}/{f.stem}", "collection": coll, "style": STYLE_OF.get(coll, "classical"),
                         "path": str(f.relative_to(args.out))})
    elif args.skip_music21 and manifest.exists():
        rows = [r for r in map(json.loads, manifest.read_text().splitlines()) if r["collection"] != "pop909"]
    else:
        rows = export_music21(args.out, args.workers, args.limit,
                              set(args.only.split(",")) if args.only else None)
    rows += collect_pop909(args.out)
    with open(manifest, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    split = write_split(rows)
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{split['pieces'][r['id']]}:{r['style']}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps(dict(sorted(counts.items())), indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
