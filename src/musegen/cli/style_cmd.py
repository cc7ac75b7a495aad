"""``musegen style learn/show/remove``: styles learned from a user's MIDI files.

Imports only click at module level; the work lives in :mod:`musegen.style`.
"""

from __future__ import annotations

import json

import click

from musegen.cli.text import echo, shown

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _say(msg: str) -> None:
    echo(msg, err=True)


@click.group(context_settings=CONTEXT)
def style() -> None:
    """Learn an artist's style from their MIDI files; show or remove learned styles.

    Styles live in $MUSEGEN_STYLE_DIR (default ~/.local/share/musegen/styles) and are
    used like presets: `musegen generate --preset NAME`.
    """


@style.command("learn", context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-n", "--name", required=True, help="Name of the new style (used as --preset NAME).")
@click.option("--steps", type=int, default=200, show_default=True, help="Most fine-tuning steps.")
@click.option("--minutes", type=float, default=5.0, show_default=True, help="Time budget for fine-tuning.")
@click.option("--from-preset", "from_preset", help="Preset to start from (default: the closest built-in).")
@click.option("--method", type=click.Choice(["full", "lora"]), help="Fine-tune all weights or adapters "
              "(default: full, which measured better in scripts/eval_style.py).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the style's summary as JSON.")
def learn(inputs, name, steps, minutes, from_preset, method, seed, as_json) -> None:
    """Learn style NAME from MIDI files and folders (searched recursively): a preset derived from
    the files (tempo, meter, key, instruments, density, swing, velocity, chords) and a fine-tune of
    the embedded model, which stops early when validation loss stops improving."""
    from musegen.cli.progress import ProgressBar
    from musegen.errors import check_range
    from musegen.style.learn import learn_style

    check_range("steps", steps, 1, 100_000, integer=True)
    check_range("minutes", minutes, 0.05, 24 * 60)
    with ProgressBar(f"learning {name}") as bar:
        info = learn_style(list(inputs), name, steps=steps, minutes=minutes, from_preset=from_preset,
                           method=method, seed=seed, progress=bar, say=_say)
    tr = info["training"]
    if as_json:
        click.echo(json.dumps(info, indent=1, default=str))
        return
    _say(f"learned {name!r} from {len(info['files'])} files (base preset {info['base_preset']}): "
         f"{tr['steps']} steps, validation loss {tr['base_valid_loss']:.3f} -> {tr['best_valid_loss']:.3f}, "
         f"{info['seconds']['total']:.0f} s")
    _say(f"use it with: musegen generate --preset {name}")
    echo(info["folder"])


@style.command("show", context_settings=CONTEXT)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name, as_json) -> None:
    """What style NAME was learned from, its statistics and its training figures."""
    from musegen.style.store import style_info

    info = style_info(name)
    if as_json:
        click.echo(json.dumps(info, indent=1, default=str))
        return
    st, tr = info["stats"], info["training"]
    t = st["tempo_bpm"]
    lines = [
        f"name: {info['name']}", f"folder: {info['folder']}", f"created: {info['created']}",
        f"files: {len(info['files'])} used, {len(info['skipped'])} skipped",
        f"base preset: {info['base_preset']} (model style {info['model_style']})",
        f"tempo: {t['p10']:.0f}-{t['p90']:.0f} BPM (median {t['median']:.0f})",
        f"meters: {st['meters']}", f"keys: {st['keys']}", f"programs by role: {st['programs_by_role']}",
        f"notes per bar: {st['notes_per_bar']:.1f}; swing {st['swing']:.2f}; velocity "
        f"{st['velocity']['mean']:.0f} +- {st['velocity']['std']:.0f}",
        f"chords: {', '.join(list(st['chords'])[:8])}",
        f"progressions: {' | '.join(' '.join(p) for p in st['progressions'])}",
        f"fine-tune: {tr['method']}, {tr['steps']} steps, validation loss {tr['base_valid_loss']:.3f} -> "
        f"{tr['best_valid_loss']:.3f}",
    ]
    echo("\n".join(shown(line) for line in lines))  # a style's text is its author's: one line each


@style.command("remove", context_settings=CONTEXT)
@click.argument("name")
def remove(name) -> None:
    """Delete style NAME (its preset, model and statistics)."""
    from musegen.style.store import remove_style

    folder = remove_style(name)
    _say(f"removed style {name!r} ({folder})")
