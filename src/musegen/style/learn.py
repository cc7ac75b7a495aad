"""``musegen style learn``: files -> a derived preset + a fine-tuned model, saved as a style.

The style is built in a hidden folder beside its final place and renamed into
place only when everything is written, so an interrupted run leaves no
half-made style (and an existing style of the same name stays until the new
one is complete).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from musegen.errors import InputError, OutputError, PresetError

MIN_FILES = 3


def _nearest_preset(stats: dict[str, Any], model_style: str) -> str:
    """The built-in preset closest to the files: model style, drums or not, meter, tempo, mode."""
    from musegen.engines.symbolic.tokens import STYLE_TO_MODEL
    from musegen.presets import list_presets

    tempo = stats["tempo_bpm"]["median"]
    meter = next(iter(stats["meters"]))
    minor = sum(n for m, n in stats["modes"].items() if m != "major") * 2 > stats["files"]
    drums = stats["files_with_drums"] * 2 >= stats["files"]
    voices = stats["files_in_voices"] * 2 > stats["files"]
    best, best_cost = "pop-ballad", float("inf")
    for preset, name, origin in list_presets():
        if preset is None or origin != "built-in":
            continue
        cost = 3.0 * (drums != (preset.instruments.drums is not None))
        cost += 2.0 * (STYLE_TO_MODEL.get(preset.style) != model_style)
        cost += 2.0 * (meter != f"{preset.meter[0]}/{preset.meter[1]}")
        cost += abs(tempo - sum(preset.tempo) / 2) / 40.0
        cost += 0.5 * (minor != (preset.mode not in ("major", "lydian", "mixolydian")))
        cost += 0.5 * (preset.engine.name != "symbolic")
        cost += 1.5 * (voices != (preset.harmony.chord_style in ("polyphony", "chorale")))
        if cost < best_cost:
            best, best_cost = name, cost
    return best


def learn_style(
    inputs: list[str | os.PathLike[str]],
    name: str,
    *,
    steps: int = 200,
    minutes: float = 5.0,
    from_preset: str | None = None,
    method: str | None = None,
    seed: int = 0,
    progress: Callable[[float, float, str], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Learn a style from MIDI files (or folders of them); returns its ``style.json`` content.

    Raises
    ------
    InputError
        Fewer than :data:`MIN_FILES` usable files (the message lists what
        was skipped and why), a bad name, or a base preset that does not exist.
    """
    from musegen.tomlout import dumps as dump_toml
    from musegen.engines.symbolic.folder import find_midi_files
    from musegen.engines.symbolic.tokens import STYLE_TO_MODEL
    from musegen.presets import load_preset, preset_from_dict
    from musegen.engines.symbolic.finetune import DEFAULT_METHOD, finetune
    from musegen.style.profile import preset_table, profile_files, summarize
    from musegen.style.store import INFO_FILE, MODEL_DIR, PRESET_FILE, check_name, style_dir, style_root

    say = say or (lambda _msg: None)
    check_name(name)
    try:
        clash = load_preset(name)
    except PresetError:
        clash = None
    if clash is not None and clash.source != "style":
        raise InputError(f"style name {name!r} is already a {clash.source} preset; choose another name")
    files = find_midi_files(list(inputs))
    if len(files) < MIN_FILES:
        raise InputError(f"learning a style needs at least {MIN_FILES} MIDI files; found {len(files)} in "
                         f"{', '.join(map(str, inputs))}")
    t0 = time.time()
    profiles, skipped = profile_files(files, progress=(lambda d, t, m: progress(d, t, f"reading {m}"))
                                      if progress else None)
    for path, why in skipped:
        say(f"skipping {path}: {why}")
    if len(profiles) < MIN_FILES:
        reasons = "; ".join(why if p in why else f"{p}: {why}" for p, why in skipped[:5])
        raise InputError(f"learning a style needs at least {MIN_FILES} MIDI files with notes; only "
                         f"{len(profiles)} of {len(files)} are usable ({reasons})")
    stats = summarize(profiles)
    base = load_preset(from_preset) if from_preset else None
    t_profile = time.time() - t0
    root = style_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the styles folder {str(root)!r}: {exc.strerror or exc}") from None
    final = style_dir(name)
    if os.path.lexists(final):  # replaced below: only an earlier style, never a user's folder
        from musegen.outputs import check_outputs
        from musegen.style.store import check_made_by_learn

        if final.is_symlink() or not final.is_dir():
            raise InputError(f"{str(final)!r} is in the way of style {name!r} and is not a learned style")
        check_made_by_learn(final)
        check_outputs([], files, folders=[final])
    work = root / f".{name}.{secrets.token_hex(4)}.part"
    try:
        work.mkdir()
        usable = [Path(p.path) for p in profiles]
        total_steps = steps

        def log(row: dict) -> None:
            if progress is not None and "step" in row:
                progress(min(row["step"] + 1, total_steps), total_steps, "fine-tuning")
            if "valid_loss" in row:
                say(f"step {row['step']}: validation loss {row['valid_loss']:.3f}")
            if "stopped" in row and row["stopped"] != "signal":  # a signal ends in the CLI's one line
                say(f"step {row['step']}: {row['stopped']}")

        # an explicit base preset sets the style token; otherwise the base model's own losses pick it
        summary = finetune(usable, work / MODEL_DIR, model_style=STYLE_TO_MODEL.get(base.style, "pop") if base
                           else None, name=name, method=method or DEFAULT_METHOD, steps=steps, minutes=minutes, seed=seed,
                           log=log)
        model_style = summary["model_style"]
        base_name = from_preset or _nearest_preset(stats, model_style)
        base = base or load_preset(base_name)
        table = preset_table(name, stats, base.to_dict())
        if not from_preset:
            table["style"] = model_style  # a preset style the model knows as itself
        engine = dict(table.get("engine", {}))
        if engine.get("name") != "symbolic":
            engine = {"name": "symbolic", "temperature": engine.get("temperature", 1.0), "options": {}}
        engine["options"] = {k: v for k, v in dict(engine.get("options", {})).items() if k != "model"}
        table["engine"] = engine
        preset_from_dict(dict(table), where=f"style {name!r}")  # what we write must load
        info = {
            "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "base_preset": base_name,
            "model_style": model_style, "files": [p.path for p in profiles],
            "skipped": [{"path": p, "reason": r} for p, r in skipped], "stats": stats,
            "training": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()},
            "seconds": {"profile": round(t_profile, 2), "total": round(time.time() - t0, 2)},
        }
        (work / PRESET_FILE).write_text(
            f"# learned by `musegen style learn` from {len(profiles)} files; edit freely\n" + dump_toml(table),
            encoding="utf-8")
        (work / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        old = None
        if final.exists():
            old = root / f".{name}.{secrets.token_hex(4)}.old"
            os.replace(final, old)
        os.replace(work, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    info["folder"] = str(final)
    return info
