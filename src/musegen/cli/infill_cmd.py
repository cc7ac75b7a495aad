"""``musegen infill``: rewrite bars K-M of a sketch so they lead into the bar after them.

Imports only click at module level; the work lives in :mod:`musegen.pipeline.infilling`.
"""

from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(context_settings=CONTEXT)
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--bars", "gap", required=True, metavar="K-M",
              help="The sketch's bars to rewrite, 1-based and inclusive (e.g. 9-12).")
@click.option("--parts", help="Parts to rewrite, comma-separated: roles (lead, bass, harmony, drums) or track "
              "names (default: every part the model writes; the shipped model writes no drums, so a sketch's "
              "drums play on as they are).")
@click.option("-p", "--preset", help="Preset for style choices and the post chain (default: pop-ballad).")
@click.option("--seed", type=int, help="Random seed (default: a fresh one, recorded in the JSON).")
@click.option("--variations", type=int, default=1, show_default=True, help="How many results.")
@click.option("--engine", help="Engine (default: symbolic, the one that infills).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False),
              help="Symbolic model folder (from `musegen train` or a learned style).")
@click.option("--temperature", type=float, help="Sampling temperature (default: the preset's).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Engine option (repeatable), e.g. candidates=8; see `musegen engines show symbolic`.")
@click.option("--soundfont", type=click.Path(dir_okay=False), help="A .sf2/.sf3 to render with.")
@click.option("--sample-rate", type=int, help="Output sample rate in Hz (default: the preset's).")
@click.option("--no-post", is_flag=True, help="Skip the preset's post-processing chain.")
@click.option("--name", help="File-name template (default '{midi}-barsK-M-s{seed}'); fields as for generate.")
@click.option("-o", "--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Output folder.")
@click.option("--commercial-use", is_flag=True, help="Refuse (exit 2) a model whose licence forbids "
              "commercial use or is unknown.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
def infill(midi, gap, parts, as_json, **kwargs) -> None:
    """Rewrite bars K-M of the sketch MIDI so they lead into bar M+1; every other bar is kept note for note.

    The shipped model was trained only to continue music, so the gap is sampled as a
    continuation of the bars before it (6 candidates, --option candidates=N), and the one
    after which the model finds the sketch's own next bars likeliest is kept, with its
    density close to the neighbouring bars'.  Notes the gap writes are cut at its end; a
    note that starts before the gap and sounds into it is kept as it is.  A model trained
    to infill (seeing the bars after the gap) can take this command over unchanged.
    Writes OUT/<stem>.wav, .mid and .json (the JSON's engine.info.infill lists the
    candidates' scores).
    """
    from musegen.cli.main import _run_generation
    from musegen.pipeline.infilling import infill as run

    kwargs.setdefault("audio_prompt", None)
    _run_generation("infilling", run, as_json, midi=midi, bars=gap, parts=parts, **kwargs)
