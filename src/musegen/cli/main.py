"""The ``musegen`` command.

stdout carries only the payload (paths, tables, or one JSON document with
``--json``); messages and progress go to stderr.  Every :class:`MusegenError`
becomes one ``Error: ...`` line with exit code 2 (bad input) or 1 (runtime
failure); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from musegen import __version__
from musegen.cli.text import echo, error_line, shown
from musegen.errors import MusegenError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _say(msg: str) -> None:
    echo(msg, err=True)  # names and values in a message are shown, never executed


class _LogLines(logging.Handler):
    """The library's log records (``musegen.*``, INFO and up) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        _say(record.getMessage())


def _log_to_stderr() -> None:
    logger = logging.getLogger("musegen")
    if not any(isinstance(h, _LogLines) for h in logger.handlers):
        logger.addHandler(_LogLines())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    from musegen.errors import ParameterError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--option must look like KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _complete_presets(ctx, param, incomplete: str):
    """Preset and learned-style names for shell completion; a path completes as a file."""
    from click.shell_completion import CompletionItem

    if "/" in incomplete or incomplete.endswith((".", ".toml")):
        return [CompletionItem(incomplete, type="file")]
    try:
        import musegen.style  # noqa: F401  (learned styles are presets too)
        from musegen.presets import list_names

        names = list_names()
    except Exception:  # a broken preset folder must not print a traceback into the shell
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def _complete_engines(ctx, param, incomplete: str):
    """Engine names for shell completion."""
    from click.shell_completion import CompletionItem

    from musegen.engines.registry import available_engines

    return [CompletionItem(n, help=d) for n, d in available_engines().items() if n.startswith(incomplete)]


_EPILOG = """\b
Shell completion (preset and engine names): see the README, e.g. for bash
  eval "$(_MUSEGEN_COMPLETE=bash_source musegen)"
\b
The fast MusicGen step (kernels=native) is compiled on first use and needs
g++ (and ninja); the batch report's browser tests need Chromium."""


class _Interrupted(Exception):
    """Ctrl-C inside a command, carried past click (which would print a blank line and "Aborted.")."""


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None


@click.group(cls=_Group, context_settings=CONTEXT, epilog=_EPILOG)
@click.version_option(__version__, "-V", "--version", prog_name="musegen")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """musegen: make music with generative models.

    Generate tracks from style presets, extend your MIDI sketches, render MIDI
    with a SoundFont, and master audio.  Try:

    \b
      musegen generate --preset lofi-chill --midi samples/melody.mid --bars 16 -o out/
    """
    _log_to_stderr()


# -- presets ------------------------------------------------------------------

@cli.group(context_settings=CONTEXT)
def presets() -> None:
    """List and inspect style presets."""


@presets.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def presets_list(as_json: bool) -> None:
    """Table of presets: name, description, tempo, key, instruments."""
    import musegen.style  # noqa: F401  (learned styles register as a preset source)
    from musegen.presets import list_presets

    rows = list_presets()
    if as_json:
        _emit_json([
            {"name": n, "origin": origin, **(p.to_dict() if p else {})} for p, n, origin in rows
        ])
        return
    table = [("NAME", "TEMPO", "KEY", "METER", "INSTRUMENTS", "ORIGIN", "DESCRIPTION")]
    for p, name, origin in rows:
        if p is None:
            table.append((name, "-", "-", "-", "-", origin, ""))
            continue
        lo, hi = p.tempo
        tempo = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        key = "random" if p.key == "random" else ("from seed" if p.key == "from-seed" else p.key)
        roles = ",".join(p.instruments.roles())
        desc = p.description if len(p.description) <= 60 else p.description[:57] + "..."
        table.append((name, tempo, f"{key} {p.mode}", f"{p.meter[0]}/{p.meter[1]}", roles, origin, desc))
    table = [tuple(shown(c) for c in r) for r in table]  # names and descriptions are the user's text
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


@presets.command("show", context_settings=CONTEXT)
@click.argument("name", shell_complete=_complete_presets)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
def presets_show(name: str, as_json: bool) -> None:
    """Print the resolved preset NAME (a name or a .toml path)."""
    from musegen.tomlout import dumps
    import musegen.style  # noqa: F401  (learned styles register as a preset source)
    from musegen.presets import load_preset

    p = load_preset(name)
    data = p.to_dict()
    if as_json:
        _emit_json(data)
    else:
        echo(dumps(data), nl=False)


@cli.group(context_settings=CONTEXT)
def engines() -> None:
    """List generation engines."""


@engines.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def engines_list(as_json: bool) -> None:
    """Engines by name, with what they do."""
    from musegen.engines.registry import available_engines

    if as_json:
        _emit_json([{"name": n, "description": d} for n, d in available_engines().items()])
        return
    for name, desc in available_engines().items():
        echo(f"{shown(name):12s}  {desc}")


@engines.command("show", context_settings=CONTEXT)
@click.argument("name", shell_complete=_complete_engines)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def engines_show(name: str, as_json: bool) -> None:
    """The options of engine NAME: name, type, range, default and what each does.

    Give them as `--option NAME=VALUE` (repeatable), in a preset's
    [engine.options] or in a batch job's options table.
    """
    from musegen.engines.registry import available_engines, engine_options

    spec = engine_options(name)  # an unknown name is refused with the list of engines
    rows = spec.to_list() if spec is not None else None
    if as_json:
        _emit_json({"name": name, "description": available_engines()[name], "options": rows})
        return
    click.echo(f"{name}: {available_engines()[name]}")
    if rows is None:
        click.echo("(this engine declares no options)")
        return

    def shown_default(v: Any) -> str:
        return "-" if v is None else json.dumps(v) if isinstance(v, (bool, list)) else f"{v:g}" \
            if isinstance(v, float) else str(v)

    def allowed(r: dict[str, Any]) -> str:
        if r["type"] in ("str", "path", "list[str]"):
            return "-"
        return r["allowed"] if len(r["allowed"]) <= 36 else "see help"  # a long list goes after the help

    table = [("OPTION", "TYPE", "ALLOWED", "DEFAULT")] + [
        (r["name"], r["type"], allowed(r), shown_default(r["default"])) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    for t, r in zip(table, [None] + rows):
        line = "  ".join(c.ljust(w) for c, w in zip(t, widths))
        if r is None:
            click.echo(f"{line}  HELP")
            continue
        extra = [f"{r['allowed']}"] if allowed(r) == "see help" else []
        extra += [f"alias: {', '.join(r['aliases'])}"] if r["aliases"] else []
        click.echo(f"{line}  {r['help']}" + (f" ({'; '.join(extra)})" if extra else ""))


# -- generate / extend ----------------------------------------------------------

def _generation_options(f):
    opts = [
        click.option("--bars", type=int, help="Bars of new music (default 16; 8 after a sketch); the file "
                     "holds them and the sound's tail (release, reverb)."),
        click.option("--seconds", type=float, help="Seconds of new music instead of --bars (not both): enough "
                     "bars to cover them are generated, and the file is cut to exactly that long (after a "
                     "sketch: the sketch, then that long), ending in a 50 ms fade-out."),
        click.option("--seed", type=int, help="Random seed (default: a fresh one, recorded in the JSON)."),
        click.option("--variations", type=int, default=1, show_default=True, help="How many results."),
        click.option("--engine", shell_complete=_complete_engines,
                     help="Engine name (default: the preset's); see `musegen engines list`."),
        click.option("--model", "model_dir", type=click.Path(file_okay=False),
                     help="Model folder for the engine: symbolic (from `musegen train` or a learned style) or a local MusicGen checkpoint (config.json + safetensors)."),
        click.option("--tempo", type=float, help="Tempo in BPM (overrides preset and sketch)."),
        click.option("--key", help="Key, e.g. 'F#m', 'Bb major', 'D dorian'."),
        click.option("--temperature", type=float, help="Sampling temperature (default: the preset's)."),
        click.option("--prompt", default="", help="Extra words for neural engines' text prompt."),
        click.option("--audio-prompt", type=click.Path(dir_okay=False),
                     help="Audio clip for an audio engine to continue (musicgen)."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                     help="Engine option (repeatable); see `musegen engines show NAME`."),
        click.option("--soundfont", type=click.Path(dir_okay=False), help="A .sf2/.sf3 to render with."),
        click.option("--sample-rate", type=int, help="Output sample rate in Hz (default: the preset's)."),
        click.option("--no-post", is_flag=True, help="Skip the preset's post-processing chain."),
        click.option("--name", help="File-name template, e.g. '{preset}-{seed}-v{variation}' or, for DAW "
                     "browsers, '{preset}-{bpm}bpm-{key}-s{seed}' (pop-ballad-71bpm-Eb-major-s3). Fields: "
                     "preset, seed, variation, midi, engine, bars, tempo, bpm, key (Eb-major, Fsharp-minor: "
                     "a sharp is spelled 'sharp'); '{bpm:0>3}' pads to 3 digits."),
        click.option("-o", "--out", "out_dir", default="out", show_default=True,
                     type=click.Path(file_okay=False), help="Output folder."),
        click.option("--commercial-use", is_flag=True, help="Refuse (exit 2) a model whose weights' licence "
                     "forbids commercial use or is unknown, naming it (MusicGen's weights are CC-BY-NC 4.0; the "
                     "symbolic model's licence is the one its MODEL_CARD.md gives, recorded in every sidecar; "
                     "the procedural engine is MIT)."),
        click.option("--loop", is_flag=True, help="Make a seamless loop of whole bars (--seconds rounds up to "
                     "bars): tails folded back onto the start, loop points in the WAV's smpl chunk and the JSON; "
                     "the preset's fades and trim are left out."),
        click.option("--stems/--no-stems", default=None, help="Also write one WAV and one MIDI file per part "
                     "(OUT/<stem>.stems/<role>-<instrument>.wav, .mid): the stems add up to the mix before "
                     "its mastering (loudness, peak) steps, which only the mix gets.  Default: the preset's "
                     "[render] stems."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _length_and_key(a: dict[str, Any]) -> str:
    """``8.00 s (asked 8 s), F major (asked Eb major)``: what was made, and what was asked where it differs."""
    asked_s = a.get("seconds_requested")
    length = (f"{a['duration_s']:.2f} s (asked {asked_s:g} s)" if asked_s is not None
              else f"{a['duration_s']:.1f} s ({a['bars']} bars)")
    key, asked_key = a.get("key"), a.get("key_requested")
    if key is None:
        return f"{length}, {asked_key} (asked, not measured)"
    return f"{length}, {key}" + (f" (asked {asked_key})" if asked_key and asked_key != key else "")


def _run_generation(label: str, fn, as_json: bool, **kwargs: Any) -> None:
    from musegen.cli.progress import ProgressBar

    no_post = kwargs.pop("no_post")
    kwargs["engine_options"] = _parse_options(kwargs.pop("options"))
    model_dir = kwargs.pop("model_dir")
    if model_dir is not None:
        kwargs["engine_options"]["model"] = model_dir
    audio_prompt = kwargs.pop("audio_prompt")
    if audio_prompt is not None:
        kwargs["engine_options"]["audio_prompt"] = audio_prompt
    if no_post:
        kwargs["post"] = []
    with ProgressBar(label) as bar:
        results = fn(progress=bar, **kwargs)
    if as_json:
        _emit_json({"results": [r.to_dict() for r in results]})
        return
    for r in results:
        a = r.sidecar["analysis"]
        _say(f"{r.stem}: {_length_and_key(a)}, {a['tempo_bpm']:g} BPM, "
             f"{a['lufs']:.1f} LUFS, peak {a['peak_dbfs']:.1f} dBFS")
        for path in (r.wav, r.mid, r.json):
            if path is not None:
                echo(path)
        if (a.get("stems") or {}).get("parts"):
            echo(r.wav.parent / a["stems"]["folder"])


@cli.command(context_settings=CONTEXT)
@click.option("-p", "--preset", shell_complete=_complete_presets,
              help="Preset name or .toml path (default: pop-ballad).")
@click.option("--midi", type=click.Path(dir_okay=False), help="A MIDI sketch to start from.")
@_generation_options
def generate(preset, midi, as_json, **kwargs) -> None:
    """Generate tracks in a preset's style, optionally from a MIDI sketch.

    Writes OUT/<stem>.wav, OUT/<stem>.mid and OUT/<stem>.json per variation.
    With --midi, each result starts with the sketch unchanged and continues it
    for --bars more bars with the preset's full arrangement.
    """
    from musegen.pipeline import generate as run

    _run_generation("generating", run, as_json, preset=preset, midi=midi, **kwargs)


@cli.command(context_settings=CONTEXT)
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-p", "--preset", shell_complete=_complete_presets,
              help="Preset for style choices (default: pop-ballad).")
@click.option("--add-parts", is_flag=True, help="Also add the preset's parts the sketch lacks (from its first bar; "
              "--option accompany_from=end: only after it).")
@_generation_options
def extend(midi, preset, add_parts, as_json, **kwargs) -> None:
    """Continue the sketch MIDI: the sketch unchanged, then --bars more bars of its own parts,
    in its tempo, meter and key."""
    from musegen.pipeline import extend as run

    _run_generation("extending", run, as_json, midi=midi, preset=preset, add_parts=add_parts, **kwargs)


from musegen.cli.infill_cmd import infill as _infill; cli.add_command(_infill)  # noqa: E402,E702


@cli.command(context_settings=CONTEXT)
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=False),
              help="MIDI files or folders to learn from (repeatable).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the trained model.")
@click.option("--style", default="pop", show_default=True,
              type=click.Choice(["pop", "chorale", "folk", "polyphony", "classical"]),
              help="Style token the files are learned under.")
@click.option("--from-scratch", is_flag=True, help="Train a new model instead of fine-tuning the shipped one.")
@click.option("--base", type=click.Path(file_okay=False), help="Fine-tune this model folder instead.")
@click.option("--steps", type=int, default=600, show_default=True)
@click.option("--minutes", type=float, default=10.0, show_default=True, help="Time budget.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def train(data, out_dir, style, from_scratch, base, steps, minutes, seed, as_json) -> None:
    """Fine-tune the embedded model on your MIDI files (or train one from scratch).

    Use the result with `musegen generate --engine symbolic --model OUT ...`.
    """
    from musegen.cli.progress import ProgressBar
    from musegen.engines.symbolic.folder import train_on_folder
    from musegen.errors import check_range

    check_range("steps", steps, 1, 1_000_000, integer=True)
    check_range("minutes", minutes, 0.1, 24 * 60)
    with ProgressBar("training") as bar:
        def log(row):
            if "step" in row:
                bar(row["step"], steps, "")
        summary = train_on_folder(list(data), out_dir, style=style, base=None if from_scratch else (base or "shipped"),
                                  steps=steps, minutes=minutes, seed=seed, log=log)
    if as_json:
        _emit_json(summary)
        return
    _say(f"trained {summary['steps']} steps on {summary['train_pieces']} pieces; "
         f"best validation loss {summary['best_valid_loss']:.3f}")
    echo(out_dir)


# -- render / post / analyze -------------------------------------------------------

def _post_steps(trim, fade_in, fade_out, tempo_from, tempo_to, pitch_shift, lufs, peak_db,
                resample_to) -> list[dict[str, Any]]:
    from musegen.errors import ParameterError

    steps: list[dict[str, Any]] = []
    if trim:
        steps.append({"op": "trim"})
    if (tempo_from is None) != (tempo_to is None):
        raise ParameterError("--tempo-from and --tempo-to go together")
    if tempo_from is not None:
        steps.append({"op": "tempo", "tempo_from": tempo_from, "tempo_to": tempo_to})
    if pitch_shift:
        steps.append({"op": "pitch_shift", "semitones": pitch_shift})
    if fade_in:
        steps.append({"op": "fade_in", "seconds": fade_in})
    if fade_out:
        steps.append({"op": "fade_out", "seconds": fade_out})
    if lufs is not None:
        steps.append({"op": "loudness", "lufs": lufs, "peak_db": peak_db})
    if resample_to is not None:
        steps.append({"op": "resample", "target_sr": resample_to})
    return steps


@cli.command(context_settings=CONTEXT)
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .wav/.flac.")
@click.option("--soundfont", type=click.Path(dir_okay=False), help="A .sf2/.sf3 (default: bundled GM).")
@click.option("--sample-rate", type=int, default=44100, show_default=True)
@click.option("--backend", type=click.Choice(["symusic", "fluidsynth"]), default="symusic", show_default=True)
@click.option("--lufs", type=float, help="Normalise loudness to this target.")
@click.option("--json", "as_json", is_flag=True)
def render(midi, out, soundfont, sample_rate, backend, lufs, as_json) -> None:
    """Render MIDI to audio with a SoundFont synthesizer."""
    from musegen.api import render as run

    steps = [] if lufs is None else [{"op": "loudness", "lufs": lufs, "peak_db": -1.0}]
    info = run(midi, out, soundfont=soundfont, sample_rate=sample_rate, backend=backend, steps=steps)
    _report_file(info, as_json)


@cli.command(context_settings=CONTEXT)
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .wav/.flac.")
@click.option("--preset", shell_complete=_complete_presets,
              help="Run this preset's post chain (before the flags below).")
@click.option("--trim", is_flag=True, help="Trim leading and trailing silence.")
@click.option("--fade-in", type=float, help="Fade-in length in seconds.")
@click.option("--fade-out", type=float, help="Fade-out length in seconds.")
@click.option("--tempo-from", type=float, help="Time-stretch from this tempo (BPM)...")
@click.option("--tempo-to", type=float, help="...to this tempo (BPM).")
@click.option("--pitch-shift", type=float, help="Shift pitch by semitones.")
@click.option("--lufs", type=float, help="Target integrated loudness (LUFS).")
@click.option("--peak-db", type=float, default=-1.0, show_default=True, help="Peak ceiling with --lufs.")
@click.option("--sample-rate", "resample_to", type=int, help="Resample the result to this rate.")
@click.option("--json", "as_json", is_flag=True)
def post(src, out, preset, trim, fade_in, fade_out, tempo_from, tempo_to, pitch_shift, lufs, peak_db,
         resample_to, as_json) -> None:
    """Post-process audio: trim, fades, tempo, pitch, loudness, resample."""
    from musegen.api import post as run
    from musegen.errors import ParameterError

    steps = []
    if preset:
        import musegen.style  # noqa: F401  (learned styles register as a preset source)
        from musegen.presets import load_preset

        steps.extend(load_preset(preset).post)
    steps.extend(_post_steps(trim, fade_in, fade_out, tempo_from, tempo_to, pitch_shift, lufs, peak_db,
                             resample_to))
    if not steps:
        raise ParameterError("nothing to do: give --preset or at least one of --trim, --fade-in, "
                             "--fade-out, --tempo-from/--tempo-to, --pitch-shift, --lufs, --sample-rate")
    _report_file(run(src, out, steps), as_json)


def _report_file(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(info)
        return
    lufs = f"{info['lufs']:.1f} LUFS, " if "lufs" in info else ""
    _say(f"{info['path']}: {info['duration_s']:.2f} s, {info['sample_rate']} Hz, {info['channels']} ch, "
         f"{lufs}peak {info['peak_dbfs']:.1f} dBFS")
    echo(info["path"])


@cli.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), help="Save a PNG (spectrogram or piano roll).")
@click.option("--json", "as_json", is_flag=True)
def analyze(path, plot, as_json) -> None:
    """Analyse an audio file (loudness, tempo, key...) or a MIDI file (tempo map, meter, key, parts)."""
    from musegen.api import analyze as run

    info = run(path, plot=plot)
    if as_json:
        _emit_json(info)
        return
    for k, v in info.items():
        if isinstance(v, (list, dict)):
            if k == "tracks":
                for t in v:
                    echo(f"  track: {json.dumps(t, default=str)}")
                continue
            if k in ("chords",):
                v = f"{len(v)} chords"
            elif len(json.dumps(v, default=str)) > 100:
                v = json.dumps(v, default=str)[:97] + "..."
        echo(f"{k}: {shown(v)}")


from musegen.cli.batch_cmd import batch as _batch; cli.add_command(_batch)  # noqa: E402,E702
from musegen.cli.style_cmd import style as _style; cli.add_command(_style)  # noqa: E402,E702
from musegen.cli.studio_cmd import studio as _studio; cli.add_command(_studio)  # noqa: E402,E702
from musegen.cli.accompany_cmd import accompany as _accompany; cli.add_command(_accompany)  # noqa: E402,E702


# -- entry point --------------------------------------------------------------------

class _Terminated(BaseException):
    """SIGTERM (``kill``, a job scheduler): unwinds like Ctrl-C, so temporary files are removed."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


def run(argv: list[str] | None = None) -> None:
    """Run the CLI, mapping errors to one line and an exit code."""
    import signal

    from musegen.memory import is_allocation_failure, prepare_for_address_limit

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]  # accepted anywhere on the line
    if argv is None:  # the real command line, not a test calling run() in process
        signal.signal(signal.SIGTERM, _terminate)
        prepare_for_address_limit()  # before numpy loads: OpenBLAS hangs under ulimit -v otherwise
    try:
        rv = cli.main(args=args, prog_name="musegen", standalone_mode=False)
    except _Terminated:
        _say("Error: terminated")
        sys.exit(143)  # 128 + SIGTERM
    except click.exceptions.Abort as exc:
        _say("Error: interrupted" if isinstance(exc.__cause__, KeyboardInterrupt) else "Aborted.")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # `musegen presets`: its help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # one line, like every other error; 2 for bad usage
        _say(error_line(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, _Interrupted):
        # One line, 130 = 128 + SIGINT.  (CPython may still end the process by SIGINT
        # when the Ctrl-C landed inside a library's exec() of a string: same code to a shell.)
        if sys.stderr.isatty():
            sys.stderr.write("\n")  # past the ^C the terminal echoed
        _say("Error: interrupted")
        sys.exit(130)
    except MusegenError as exc:
        if debug:
            raise
        if not isinstance(exc, MemoryError) and is_allocation_failure(exc.__context__):
            _say("Error: out of memory")  # what it was raised for, not what it made of it ("not installed")
            sys.exit(1)
        _say(f"Error: {shown(exc)}")  # one line, whatever a file name in it holds
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        # a MemoryError, or a library that could not be mapped (ImportError, ENOMEM) under ulimit -v
        if is_allocation_failure(exc):
            _say("Error: out of memory")
            sys.exit(1)
        if not isinstance(exc, OSError):
            _say(f"Error: internal error: {type(exc).__name__}: {shown(exc)} (run with --debug for the traceback)")
            sys.exit(1)
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _say(f"Error: {shown(exc.strerror or exc)}{shown(where)}")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
