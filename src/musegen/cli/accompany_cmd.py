"""``musegen accompany MELODY --parts bass,drums,piano``: a band under a melody.

Imports only click at module level; the work lives in :func:`musegen.pipeline.accompany`.
"""

from __future__ import annotations

import click

from musegen.cli.main import CONTEXT, _complete_presets, _generation_options, _run_generation

#: generation options that make no sense here: the result is as long as the melody
_LEFT_OUT = ("bars", "seconds", "loop", "audio_prompt")


@click.command(context_settings=CONTEXT)
@click.argument("midi", type=click.Path(dir_okay=False))
# the names of musegen.pipeline.accompaniment.PARTS, written out: importing the pipeline
# would slow `musegen --help` (a test checks the two agree)
@click.option("--parts", required=True, help="Comma-separated parts to add: bass, drums, harmony, chords, piano, "
              "pad (harmony, chords and piano are one part; piano plays an acoustic grand).")
@click.option("-p", "--preset", shell_complete=_complete_presets,
              help="Preset for the style and the parts' instruments (default: pop-ballad; a part the preset "
                   "lacks gets a default program).")
@_generation_options
def accompany(midi, parts, preset, as_json, **kwargs) -> None:
    """Add a band under the melody MIDI, in its key, tempo and meter.

    The melody stays note for note; each part plays from the melody's first bar
    to its last bar line, and nothing follows it.  Writes OUT/<stem>.wav, .mid
    and .json (the JSON's parameters.parts lists the parts added).
    """
    from musegen.pipeline import accompany as run

    kwargs["audio_prompt"] = None
    _run_generation("accompanying", run, as_json, midi=midi, parts=parts, preset=preset, **kwargs)


accompany.params = [p for p in accompany.params if p.name not in _LEFT_OUT]
