"""MIDI to audio with a SoundFont synthesizer."""

from musegen.render.synth import BACKENDS, default_soundfont, render_score, resolve_soundfont

__all__ = ["BACKENDS", "default_soundfont", "render_score", "resolve_soundfont"]
