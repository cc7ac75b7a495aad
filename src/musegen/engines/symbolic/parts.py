"""Parts added under a sketch by a version-3 model (part infilling, :mod:`.layout`).

``musegen accompany melody.mid --parts bass,piano``: for each part asked for,
the model reads the sketch's bars without that part (``ADD_p`` among the
controls, then the music, then ``PART_START``) and writes the part alone over
the same bars, knowing every other part of the passage, the bars ahead
included.  Parts are written one after another, each hearing the ones before
it; a sketch longer than the model's window is taken in chunks of whole bars.
The sketch's own notes are never touched.  Drums come from :mod:`.drums`.
"""

from __future__ import annotations

from symusic import Note, Score, Track

from musegen.engines.base import Request
from musegen.engines.symbolic.tokens import BASS_PROGRAM, canonicalize, decode, encode

#: the roles a version-3 model adds by part infilling (drums: .drums), and the canonical part it
#: writes each as: the training data has bass parts (chorales, piano left hands) and accompaniment
#: in the piano family (POP909's piano under its melody, lead sheets' chords, lieder); a pad it
#: never learned stays with the procedural arranger
ROLES = {"bass": BASS_PROGRAM, "harmony": 0}


def role_program(request: Request, role: str) -> tuple[int, int] | None:
    """``(canonical program, GM program)`` of a preset role, or None where the preset has none."""
    real = getattr(request.preset.instruments, role, None)
    if real is None or role not in ROLES:
        return None
    return ROLES[role], int(real)


def wanted_roles(request: Request, layout) -> list[str]:
    """The roles the model adds: accompany's (``Request.add_roles``) that it can write."""
    if layout is None or request.seed is None or request.add_roles is None:
        return []
    return [r for r in request.add_roles if r in ROLES and role_program(request, r) is not None]


def _chunks(layout, body: list[int], budget: int) -> list[tuple[int, list[int]]]:
    """``(first bar, ids)`` chunks of whole bars of at most ``budget`` tokens (a longer bar alone)."""
    starts = [i for i, t in enumerate(body) if t == layout.bar_id] + [len(body)]
    out, first, a = [], 0, starts[0] if starts else 0
    for k in range(1, len(starts)):
        if starts[k] - a > budget and starts[k - 1] > a:
            out.append((first, body[a:starts[k - 1]]))
            first, a = k - 1, starts[k - 1]
    if len(starts) > 1 and a < len(body):
        out.append((first, body[a:]))
    return out


def add_parts(sampler, tokenizer, request: Request, roles: list[str], generators, context: int) -> list[list[tuple]]:
    """The parts of every variation: per variation, ``(role, GM program, canonical, notes)`` each.

    Notes are in the sketch's ticks, on its bar grid.
    """
    import numpy as np

    from musegen.engines.symbolic.continuation import control_ids
    from musegen.engines.symbolic.sampler import SampleSettings
    from musegen.engines.symbolic.tokens import condition_tokens

    layout = sampler.layout
    seed, analysis = request.seed, request.seed_analysis
    canon, _ = canonicalize(seed, list(analysis.tracks))
    for trk in canon.tracks:  # the model learned parts without a drum kit beside them
        if trk.is_drum:
            trk.notes.clear()
    head = condition_tokens(tokenizer, request.preset.style, request.tonic, request.mode)
    tpq_out = seed.ticks_per_quarter
    bar_out = int(analysis.bar_ticks)
    starts_out = [int(b) for b in analysis.bar_starts]
    results = []
    for v, gen in enumerate(generators):
        score = canon.copy()
        added = []
        for role in roles:
            prog, real = role_program(request, role)
            body = encode(tokenizer, score)
            parts = sorted({(-1 if t.is_drum else int(t.program)) for t in score.tracks if len(t.notes)} | {prog})
            cond = head + control_ids(layout, body, parts) + [layout.extra[f"ADD_{prog}"]]
            settings = SampleSettings(temperature=request.temperature, programs=(prog,), wanted=(prog,))
            notes: list[Note] = []
            for first, chunk in _chunks(layout, body, context // 2 - len(cond) - 8):
                rest, _ = layout.split_part(np.asarray(chunk, dtype=np.int64), prog)
                bars = int((np.asarray(chunk) == layout.bar_id).sum())
                prompt = cond + rest.tolist() + [layout.extra["PART_START"]]
                new = sampler.sample([prompt], bars=bars, meter=request.meter, settings=settings, generator=[gen])[0]
                got = decode(tokenizer, new) if new else Score(8)
                ratio = tpq_out / got.ticks_per_quarter
                origin = starts_out[first] if first < len(starts_out) else first * bar_out
                end = starts_out[first + bars] if first + bars < len(starts_out) else origin + bars * bar_out
                for trk in got.tracks:
                    for n in trk.notes:
                        t = origin + int(round(n.time * ratio))
                        if t < end:
                            notes.append(Note(t, max(1, min(int(round(n.duration * ratio)), end - t)),
                                              int(n.pitch), int(n.velocity)))
            added.append((role, real, prog, notes))
            trk = Track(name=role, program=prog, is_drum=False)  # the next part hears this one
            for n in notes:
                trk.notes.append(n)
            score.tracks.append(trk)
        results.append(added)
    return results
