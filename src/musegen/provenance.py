"""What made a result and under which terms: the sidecar's ``provenance`` block and its one-line form.

Every result records the musegen version, the engine, the model and its
weights' licence, the training data sources (from the model card), the seed,
the preset and the inputs with their SHA-256.  The same facts, as one line
(:func:`provenance_line`), go into the WAV (``ICMT``) and the MIDI (a text
meta event), so a file moved into a DAW still says what made it.

Licences are found where the model says them: a model card's front matter
(``license:``, as the Hugging Face hub stores it in ``README.md``; the
symbolic model's ``MODEL_CARD.md``), else a table of known models
(:data:`KNOWN_LICENCES`); a fine-tune inherits its base's terms.  A model
whose licence cannot be found says ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from musegen import __version__

#: licences of models that do not say theirs in a card musegen can read: model id -> (licence, note)
KNOWN_LICENCES: dict[str, tuple[str, str]] = {
    # the first symbolic weights (tokenizer version 1): their card says its terms in a licence
    # warning, not in a ``license:`` line; a card that has one is read instead (the shipped
    # weights are whichever the package holds, so no entry speaks for them by a generic name)
    "musegen-symbolic-v1-d160": (
        "non-commercial",
        "trained on music21 corpus collections with non-commercial (essenFolksong) and rights-reserved "
        "(palestrina) terms; not for commercial use (see its MODEL_CARD.md)"),
}
#: hub id prefixes with a known licence (Meta's MusicGen weights: CC-BY-NC 4.0, as their model cards say)
KNOWN_PREFIXES: dict[str, tuple[str, str]] = {
    "facebook/musicgen": ("cc-by-nc-4.0", "Meta's MusicGen weights are released under CC-BY-NC 4.0 "
                          "(non-commercial use only)"),
}
#: licence ids (lower case) that allow commercial use of what a model makes
COMMERCIAL = {"mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0",
              "openrail", "openrail++", "unlicense", "isc", "mpl-2.0", "cc-by-3.0", "cc-by-sa-3.0"}
#: the procedural engine: no model, musegen's own code
PROCEDURAL = {"model": None, "licence": "MIT", "licence_note": "no model: musegen's own MIT-licensed code "
              "composes the music", "training_sources": []}


def front_matter(path: str | os.PathLike[str]) -> dict[str, str]:
    """``key: value`` lines between a card's first two ``---`` lines (top-level keys only)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, str] = {}
    for line in lines[1:200]:
        if line.strip() == "---":
            break
        if line[:1].isspace() or line.lstrip().startswith("-"):
            continue  # a nested value or a list item
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip().strip("'\"")
    return out


def commercial_use(licence: str | None) -> bool | None:
    """Whether ``licence`` allows commercial use: True, False, or None when it is not known."""
    if not licence:
        return None
    text = licence.lower()
    if "nc" in re.split(r"[^a-z0-9]+", text) or "non-commercial" in text or "noncommercial" in text:
        return False
    return True if text in COMMERCIAL else None


def _known(model_id: str | None) -> tuple[str | None, str | None]:
    if not model_id:
        return None, None
    if model_id in KNOWN_LICENCES:
        return KNOWN_LICENCES[model_id]
    bare = f"facebook/{model_id}" if model_id.startswith("musicgen") and "/" not in model_id else model_id
    for prefix, found in KNOWN_PREFIXES.items():
        if bare.startswith(prefix):
            return found
    return None, None


def hf_licence(folder: Path, name: str, depth: int = 0) -> tuple[str | None, str | None]:
    """``(licence, note)`` of a Hugging Face model folder: its README's ``license:``, else its id's or base's."""
    card = front_matter(folder / "README.md") if folder is not None else {}
    if card.get("license"):
        return card["license"].lower(), f"from the model card ({folder / 'README.md'})"
    licence, note = _known(name)
    if licence:
        return licence, note
    try:
        base = json.loads((folder / "config.json").read_text()).get("_name_or_path") if folder else None
    except (OSError, ValueError, AttributeError):
        base = None
    if isinstance(base, str) and base and base != name and depth < 3:
        base_path = Path(base)
        licence, note = hf_licence(base_path if base_path.is_dir() else None, base, depth + 1)
        if licence:
            return licence, f"a fine-tune of {base}, whose terms it inherits: {note}"
    return None, None


def _musicgen(info: dict[str, Any]) -> dict[str, Any]:
    name = str(info.get("model") or "facebook/musicgen-small")
    folder = Path(name).expanduser()
    if not folder.is_dir():
        try:
            from musegen.engines.musicgen.resolve import resolve_model

            folder = resolve_model(name).path
        except Exception:  # noqa: BLE001 - not in the cache: the table of known ids decides
            folder = None
    licence, note = hf_licence(folder, name)
    return {"model": name, "licence": licence, "licence_note": note or "no licence found in the model's card",
            "training_sources": None}


def _symbolic(info: dict[str, Any], model_option: Any, depth: int = 0) -> dict[str, Any]:
    card_path = info.get("model_card")
    card_id = info.get("model_card_id")
    name = card_id or info.get("model")
    out = {"model": name, "model_card": card_path, "training_sources": info.get("training_sources")}
    card = front_matter(card_path) if card_path else {}
    if card.get("license"):
        return {**out, "licence": card["license"].lower(), "licence_note": f"from the model card ({card_path})"}
    folder = Path(model_option) if isinstance(model_option, (str, os.PathLike)) and model_option else None
    config: dict[str, Any] = {}
    if folder is not None:
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
    base = config.get("base") if isinstance(config, dict) else None
    if folder is not None and base is not None and depth < 3:
        if base == "none":
            return {**out, "licence": None, "licence_note": "trained from scratch on the user's files: "
                    "their terms apply"}
        from musegen.engines.symbolic.card import model_card_info

        base_folder = None if base == "shipped" else base
        try:
            base_info = model_card_info({}, base_folder)
        except Exception:  # noqa: BLE001 - a base that moved: unknown
            base_info = {}
        base_info.setdefault("model", str(config.get("base_model") or base))
        inherited = _symbolic(base_info, base_folder, depth + 1)
        if inherited.get("licence"):
            return {**out, "licence": inherited["licence"],
                    "licence_note": f"a fine-tune of {inherited['model']}, whose terms it inherits, on the user's "
                                    f"files (their terms apply too): {inherited['licence_note']}",
                    "base_training_sources": inherited.get("training_sources")}
    licence, note = _known(card_id) if card_id else (None, None)
    if licence is None and folder is None:
        licence, note = _known(info.get("model"))
    return {**out, "licence": licence, "licence_note": note or "no licence found in the model's card"}


def model_provenance(engine: str, info: dict[str, Any], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``model``, ``licence``, ``licence_note``, ``training_sources`` (and ``model_card``) of a result's model."""
    options = options or {}
    if engine == "procedural":
        return dict(PROCEDURAL)
    if engine == "musicgen":
        return _musicgen(info)
    if engine == "symbolic":
        return _symbolic(info, options.get("model"))
    name = info.get("model")
    licence, note = _known(name)
    return {"model": name, "licence": licence, "licence_note": note or "engine without a known model card",
            "training_sources": info.get("training_sources")}


def provenance(*, engine: str, info: dict[str, Any], options: dict[str, Any] | None, seed: int, preset: str,
               inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The sidecar's ``provenance`` block.

    Parameters
    ----------
    engine : str
        Engine name.
    info : dict
        The engine's ``info`` of the result (model, model card, sources ...).
    options : dict or None
        The engine options of the run (a symbolic ``model`` folder is read for its base).
    seed : int
    preset : str
    inputs : list of dict
        ``{"kind", "path", "sha256"}`` of each input file (MIDI sketch, audio prompt).

    Returns
    -------
    dict
        ``musegen``, ``engine``, ``model``, ``licence``, ``licence_note``,
        ``commercial_use`` (True, False or None: unknown), ``training_sources``,
        ``model_card``, ``seed``, ``preset``, ``inputs`` and ``text`` (the line
        written into the WAV and MIDI files).
    """
    model = model_provenance(engine, info, options)
    block = {
        "musegen": __version__,
        "engine": engine,
        "model": model.get("model"),
        "licence": model.get("licence"),
        "licence_note": model.get("licence_note"),
        "commercial_use": commercial_use(model.get("licence")),
        "training_sources": model.get("training_sources"),
        "model_card": model.get("model_card"),
        "seed": seed,
        "preset": preset,
        "inputs": inputs,
    }
    if model.get("base_training_sources"):
        block["base_training_sources"] = model["base_training_sources"]
    block["text"] = provenance_line(block)
    return block


def provenance_line(block: dict[str, Any]) -> str:
    """One line of ``key=value; ...`` from a provenance block, for the WAV ``ICMT`` and the MIDI text event."""
    parts = [f"made with musegen {block['musegen']}", f"engine={block['engine']}",
             f"model={block.get('model') or 'none'}",
             f"{'weights licence' if block.get('model') else 'licence'}={block.get('licence') or 'unknown'}",
             f"seed={block['seed']}", f"preset={block['preset']}"]
    for item in block.get("inputs") or ():
        if item.get("sha256"):
            parts.append(f"{item['kind']} sha256={item['sha256']}")
    return "; ".join(str(p).replace("\n", " ") for p in parts)


def wav_metadata(block: dict[str, Any], *, title: str, genre: str | None, tempo_bpm: float,
                 meter: tuple[int, int], tonic: int, music_s: float, duration_s: float | None = None,
                 steps: "Sequence[dict[str, Any]]" = (), loop: tuple[int, int] | None = None):
    """The :class:`~musegen.audio.wavmeta.WavMetadata` of a result: INFO text, ``acid`` tempo and key.

    ``beats`` counts the quarter notes at ``tempo_bpm`` of the music in the file: ``music_s``
    seconds of it, or ``duration_s`` (the file's length) where the file was cut shorter
    (``--seconds``); a sketch with another tempo makes it approximate.  The root note is
    the tonic in the octave above middle C (MIDI 60-71).  ``steps`` is the post chain the
    audio went through: its ``stretch`` and ``tempo`` steps change the file's tempo, its
    ``pitch_shift`` steps its key (a shift by a fraction of a semitone leaves no root note).
    """
    import datetime

    from musegen.audio.wavmeta import WavMetadata

    speed, semitones = chain_changes(steps)
    # the beats of the music in the file: duration_s is after the chain, music_s before it
    seconds = music_s if duration_s is None else min(music_s, duration_s * speed)
    root = 60 + (int(tonic) + round(semitones)) % 12 if abs(semitones - round(semitones)) < 1e-6 else None
    return WavMetadata(
        title=title, software=f"musegen {block['musegen']}", comment=block["text"], genre=genre,
        date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        tempo_bpm=float(tempo_bpm) * speed, beats=max(0, round(seconds * tempo_bpm / 60.0)),
        meter=(int(meter[0]), int(meter[1])), root_note=root, loop=loop,
    )


def run_licence(engine: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model and weights licence a run of ``engine`` with ``options`` will use, known before it runs.

    Returns :func:`model_provenance`'s dict (``model``, ``licence``, ``licence_note`` ...) for the
    model the engine loads: the ``model`` option's, else the engine's default.
    """
    options = options or {}
    if engine == "musicgen":
        from musegen.engines.musicgen.resolve import DEFAULT_MODEL

        return _musicgen({"model": str(options.get("model") or DEFAULT_MODEL)})
    if engine == "symbolic":
        from musegen.engines.symbolic.card import model_card_info

        folder = options.get("model")
        config: dict[str, Any] = {}
        if isinstance(folder, (str, os.PathLike)) and folder:
            try:
                config = json.loads((Path(folder) / "config.json").read_text())
            except (OSError, ValueError):
                config = {}
        try:
            info = model_card_info(config if isinstance(config, dict) else {}, folder or None)
        except Exception:  # noqa: BLE001 - a folder the engine will refuse by itself
            info = {"model_card": None, "model_card_id": None, "training_sources": []}
        info["model"] = (config.get("name") if isinstance(config, dict) else None) or str(folder or "musegen-symbolic")
        return _symbolic(info, folder)
    return model_provenance(engine, {}, options)


def check_commercial_use(engine: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Refuse a run for commercial use whose model's weights forbid it or say no licence.

    Returns :func:`run_licence`'s dict when the licence allows commercial use.

    Raises
    ------
    ParameterError
        One line naming the engine, the model and its licence (or that it is unknown).
    """
    from musegen.errors import ParameterError

    got = run_licence(engine, options)
    allowed = commercial_use(got.get("licence"))
    model = got.get("model") or "no model"
    if allowed is False:
        raise ParameterError(f"--commercial-use: engine {engine!r} uses model {model!r}, whose weights licence "
                             f"{got['licence']!r} forbids commercial use ({got.get('licence_note')})")
    if allowed is None:
        what = f"licence {got['licence']!r} is not one musegen knows to allow it" if got.get("licence") else \
            "licence is unknown (no 'license:' in its model card)"
        raise ParameterError(f"--commercial-use: engine {engine!r} uses model {model!r}, whose {what}")
    return got


def licence_notice(engine: str, options: dict[str, Any] | None = None) -> str | None:
    """A one-line notice for a run whose model's weights are for non-commercial use only, else None."""
    got = run_licence(engine, options)
    if commercial_use(got.get("licence")) is False:
        return (f"musegen: note: model {got.get('model')!r} ({engine}) has weights licence {got['licence']!r}: "
                "what it makes is for non-commercial use only (see the sidecar's provenance)")
    return None


def chain_changes(steps: "Sequence[dict[str, Any]]") -> tuple[float, float]:
    """``(speed, semitones)`` a post chain applies: its ``stretch``/``tempo`` and ``pitch_shift`` steps."""
    speed, semitones = 1.0, 0.0
    for step in steps:
        if step.get("op") == "stretch":
            speed *= float(step["rate"])
        elif step.get("op") == "tempo":
            speed *= float(step["tempo_to"]) / float(step["tempo_from"])
        elif step.get("op") == "pitch_shift":
            semitones += float(step["semitones"])
    return speed, semitones


def _ops(steps: "Sequence[dict[str, Any]]") -> str:
    return ", ".join(str(step.get("op")) for step in steps) or "no steps"


def render_metadata(score, midi: str | os.PathLike[str], *, soundfont: Any, title: str,
                    steps: "Sequence[dict[str, Any]]" = ()):
    """The :class:`~musegen.audio.wavmeta.WavMetadata` of ``musegen render``: what was rendered, its tempo and key.

    The comment names the MIDI file (and its SHA-256), the soundfont and the chain, then
    the MIDI's own provenance line where it is a musegen result.  Tempo, meter, beats and
    root come from the score's first tempo, time and key signatures.
    """
    import datetime
    import hashlib

    from musegen.audio.wavmeta import WavMetadata
    from musegen.midi.meta import leading_texts

    raw = Path(midi).read_bytes()
    line = (f"rendered with musegen {__version__} from {Path(midi).name} (sha256={hashlib.sha256(raw).hexdigest()}); "
            f"soundfont={Path(str(soundfont)).name if soundfont else 'default'}; post={_ops(steps)}")
    made = [t for t in leading_texts(raw) if t.startswith("made with musegen")]
    if made:
        line += f"; the MIDI: {made[0]}"
    speed, semitones = chain_changes(steps)
    tempo = meter = root = beats = None
    if len(score.tempos):
        tempo = float(min(score.tempos, key=lambda t: t.time).qpm) * speed
        beats = round(score.end() / max(score.ticks_per_quarter, 1))
    if len(score.time_signatures):
        sig = min(score.time_signatures, key=lambda t: t.time)
        meter = (int(sig.numerator), int(sig.denominator))
    if len(score.key_signatures) and abs(semitones - round(semitones)) < 1e-6:
        sig = min(score.key_signatures, key=lambda k: k.time)
        if -7 <= sig.key <= 7 and sig.tonality in (0, 1):
            tonic = (7 * sig.key + (9 if sig.tonality == 1 else 0)) % 12
            root = 60 + (tonic + round(semitones)) % 12
    return WavMetadata(title=title, software=f"musegen {__version__}", comment=line,
                       date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                       tempo_bpm=tempo, beats=beats, meter=meter or (4, 4), root_note=root)


def post_metadata(src: str | os.PathLike[str], *, title: str, steps: "Sequence[dict[str, Any]]"):
    """The :class:`~musegen.audio.wavmeta.WavMetadata` of ``musegen post``: the source WAV's, carried over.

    A WAV source's INFO fields and ``acid`` chunk are kept (its tempo and root changed as
    the chain changes them); the comment says what the chain did, after the source's own.
    """
    import datetime

    from musegen.audio.wavmeta import WavMetadata, read_metadata

    info, acid = {}, None
    if str(src).lower().endswith(".wav"):
        try:
            found = read_metadata(src)
            info, acid = found["info"], found["acid"]
        except Exception:  # noqa: BLE001 - a WAV musegen cannot parse keeps no tags, the audio still goes
            pass
    line = f"post-processed with musegen {__version__}: {_ops(steps)}"
    comment = f"{info['ICMT']}; {line}" if info.get("ICMT") else f"{line} (from {Path(src).name})"
    speed, semitones = chain_changes(steps)
    fields: dict[str, Any] = {}
    if acid is not None and acid["tempo_bpm"] > 0:
        root = acid["root_note"]
        if root is not None:
            root = root + round(semitones) if abs(semitones - round(semitones)) < 1e-6 else None
            root = root if root is not None and 0 <= root <= 127 else None
        fields = dict(tempo_bpm=acid["tempo_bpm"] * speed, beats=acid["beats"], meter=acid["meter"],
                      root_note=root, one_shot=acid["one_shot"])
    return WavMetadata(title=info.get("INAM") or title, software=f"musegen {__version__}", comment=comment,
                       genre=info.get("IGNR"), date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                       **fields)


#: notices said in this process (one per model, however many runs or batch jobs)
_NOTED: set[str] = set()


def licence_gate(engine: str, options: dict[str, Any] | None, *, commercial_use: bool) -> None:
    """Before a run: with ``commercial_use``, refuse a model whose licence does not allow it
    (:func:`check_commercial_use`)."""
    if commercial_use:
        check_commercial_use(engine, options)


def note_licence(engine: str, options: dict[str, Any] | None) -> None:
    """After a run has written its files: a one-line notice for a non-commercial model
    (:func:`licence_notice`), once per model in a process.  Said after, not before, so a run
    that fails still ends in its one error line."""
    notice = licence_notice(engine, options)
    if notice and notice not in _NOTED:
        import logging

        _NOTED.add(notice)
        logging.getLogger("musegen.provenance").info("%s", notice)
