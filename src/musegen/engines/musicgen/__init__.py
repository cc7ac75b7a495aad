"""The ``musicgen`` engine: MusicGen and MusicGen-Melody through transformers.

Modules, lowest first: :mod:`.resolve` (find a model folder, never download),
:mod:`.chroma` (melody conditioning from MIDI notes or audio), :mod:`.longform`
(window planning, chunked decoding with crossfades), :mod:`.fast` (the
decoding loop), :mod:`.model` (loading, conditioning, EnCodec), :mod:`.engine`
(requests in, audio out), :mod:`.testing` (random-weight models for tests
and benchmarks).  Nothing here is imported by ``import musegen``; torch and
transformers load when the engine is first used.
"""

__all__ = ["MusicGenEngine"]


def __getattr__(name: str):
    if name == "MusicGenEngine":
        from musegen.engines.musicgen.engine import MusicGenEngine

        return MusicGenEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
