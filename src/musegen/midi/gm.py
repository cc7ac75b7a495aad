"""General MIDI program names, as short file-name words (``"acoustic-grand-piano"``)."""

from __future__ import annotations

#: The 128 General MIDI Level 1 melodic programs, 0-based.
GM_PROGRAMS = (
    "acoustic-grand-piano", "bright-acoustic-piano", "electric-grand-piano", "honky-tonk-piano",
    "electric-piano-1", "electric-piano-2", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music-box", "vibraphone", "marimba", "xylophone", "tubular-bells", "dulcimer",
    "drawbar-organ", "percussive-organ", "rock-organ", "church-organ", "reed-organ", "accordion", "harmonica",
    "tango-accordion",
    "nylon-guitar", "steel-guitar", "jazz-guitar", "clean-guitar", "muted-guitar", "overdriven-guitar",
    "distortion-guitar", "guitar-harmonics",
    "acoustic-bass", "finger-bass", "pick-bass", "fretless-bass", "slap-bass-1", "slap-bass-2", "synth-bass-1",
    "synth-bass-2",
    "violin", "viola", "cello", "contrabass", "tremolo-strings", "pizzicato-strings", "orchestral-harp", "timpani",
    "string-ensemble-1", "string-ensemble-2", "synth-strings-1", "synth-strings-2", "choir-aahs", "voice-oohs",
    "synth-voice", "orchestra-hit",
    "trumpet", "trombone", "tuba", "muted-trumpet", "french-horn", "brass-section", "synth-brass-1",
    "synth-brass-2",
    "soprano-sax", "alto-sax", "tenor-sax", "baritone-sax", "oboe", "english-horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan-flute", "blown-bottle", "shakuhachi", "whistle", "ocarina",
    "square-lead", "sawtooth-lead", "calliope-lead", "chiff-lead", "charang-lead", "voice-lead", "fifths-lead",
    "bass-lead",
    "new-age-pad", "warm-pad", "polysynth-pad", "choir-pad", "bowed-pad", "metallic-pad", "halo-pad", "sweep-pad",
    "rain-fx", "soundtrack-fx", "crystal-fx", "atmosphere-fx", "brightness-fx", "goblins-fx", "echoes-fx",
    "sci-fi-fx",
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle-bell", "agogo", "steel-drums", "woodblock", "taiko-drum", "melodic-tom", "synth-drum", "reverse-cymbal",
    "guitar-fret-noise", "breath-noise", "seashore", "bird-tweet", "telephone-ring", "helicopter", "applause",
    "gunshot",
)


#: GS drum kits by program (a drum track's program picks its kit); others are variants of the one below.
GM_KITS = {0: "standard-kit", 8: "room-kit", 16: "power-kit", 24: "electronic-kit", 25: "tr-808-kit",
           32: "jazz-kit", 40: "brush-kit", 48: "orchestra-kit", 56: "sfx-kit"}


def program_name(program: int, *, is_drum: bool = False) -> str:
    """The GM name of ``program``; for a drum track, its kit's (``"standard-kit"``)."""
    program = max(0, min(127, int(program)))
    if is_drum:
        return GM_KITS[max(k for k in GM_KITS if k <= program)]
    return GM_PROGRAMS[program]
