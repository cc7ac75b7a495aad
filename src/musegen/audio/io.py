"""Reading, writing and resampling audio.

Audio is float32 ``(channels, samples)`` everywhere.  Writes are atomic: a
file either appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from musegen import limits
from musegen.atomic import atomic_path
from musegen.audio._checks import MAX_CHANNELS, MAX_SR, MIN_SR, as_audio, check_sr
from musegen.errors import AudioError, OutputError, ParameterError

if TYPE_CHECKING:
    from musegen.audio.wavmeta import WavMetadata

__all__ = ["read_audio", "resample", "write_audio"]

#: File extension -> libsndfile major format.
FORMATS = {
    ".wav": "WAV",
    ".flac": "FLAC",
    ".ogg": "OGG",
    ".aif": "AIFF",
    ".aiff": "AIFF",
    ".mp3": "MP3",
}
_LOSSY = {"OGG", "MP3"}
#: Largest sample magnitude read (+60 dBFS): a float file may exceed full scale, but
#: values near float32's range overflow every sum and square taken on them.
MAX_SAMPLE = 1000.0


def read_audio(
    path: str | os.PathLike[str], *, sr: int | None = None, mono: bool = False
) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, AIFF, MP3 ...).

    Parameters
    ----------
    path : str or path-like
    sr : int, optional
        Resample to this rate in Hz (soxr, high quality); ``None`` keeps the
        file's rate.
    mono : bool
        Average the channels into one.

    Returns
    -------
    y : np.ndarray, shape (channels, samples), float32
    sr : int
        Sample rate of ``y`` in Hz.

    Notes
    -----
    The length limits (``audio_seconds``, ``audio_samples``) are checked
    from the header before decoding.  A header that does not give the
    length (a FLAC whose STREAMINFO says 0 samples, as streaming encoders
    write) is decoded in blocks and counted, and refused as soon as the
    count passes a limit.

    Raises
    ------
    AudioError
        The file is missing, empty, not audio, holds no samples, has NaN or
        infinite samples, a rate outside 1000-384000 Hz or more than 8
        channels.  The message names the path.
    ParameterError
        ``sr`` is out of range.
    """
    if sr is not None:
        sr = check_sr(sr)
    name = str(path)
    p = Path(path)
    if not p.exists():
        raise AudioError(f"audio file {name!r} not found")
    if p.is_dir():
        raise AudioError(f"audio file {name!r} is a directory")
    if not p.is_file():  # a FIFO or a device: libsndfile could wait on it forever
        raise AudioError(f"audio file {name!r} is not a regular file")
    try:
        if p.stat().st_size == 0:
            raise AudioError(f"audio file {name!r} is empty (0 bytes)")
        quiet = _quiet_decoder(p)
        with quiet():
            info = sf.info(name)
    except AudioError:
        raise
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(f"{name!r} is not a readable audio file: {_short(exc)}") from exc
    if not MIN_SR <= info.samplerate <= MAX_SR:
        raise AudioError(
            f"audio file {name!r} has an unsupported sample rate of {info.samplerate} Hz "
            f"(expected {MIN_SR}-{MAX_SR})"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(
            f"audio file {name!r} has {info.channels} channels (at most {MAX_CHANNELS} are supported)"
        )
    unknown = info.frames >= _UNKNOWN_FRAMES
    if not unknown:
        # before decoding: the header's frame count says how much memory the samples take
        _check_length(name, info.frames, info.samplerate, info.channels)
    try:
        with quiet():
            if unknown:
                data, file_sr = _read_counting(name, info.samplerate, info.channels)
            else:
                data, file_sr = sf.read(name, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (RuntimeError, OSError, TypeError, ValueError) as exc:
        raise AudioError(f"cannot decode audio file {name!r}: {_short(exc)}") from exc
    except MemoryError:
        raise AudioError(f"audio file {name!r} does not fit in memory") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file {name!r} holds no samples")
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: reported just below
        finite = np.isfinite(data.sum(dtype=np.float64))
    if not finite:
        raise AudioError(f"audio file {name!r} contains NaN or infinite samples")
    peak = max(float(data.max()), -float(data.min()))
    if peak > MAX_SAMPLE:
        raise AudioError(f"audio file {name!r} has samples of magnitude {peak:.3g}, far outside -1..1 "
                         f"(the most accepted is {MAX_SAMPLE:g}, +60 dBFS)")
    y = np.ascontiguousarray(data.T)
    if mono and y.shape[0] > 1:
        y = y.mean(axis=0, keepdims=True)
    if sr is not None and sr != file_sr:
        y = resample(y, sr=file_sr, target_sr=sr)
        file_sr = sr
    return y, int(file_sr)


#: libsndfile's frame count for a stream whose header does not say its length (SF_COUNT_MAX),
#: e.g. a FLAC whose STREAMINFO gives 0 total samples ("unknown", as a streaming encoder writes)
_UNKNOWN_FRAMES = 2**63 - 1
#: frames decoded at a time when the length must be counted
_BLOCK_FRAMES = 1 << 16


def _check_length(name: str, frames: int, sr: int, channels: int, *, more: bool = False) -> None:
    # counted so far (more=True): the file lasts at least this long, so no rounding up
    over = "at least " if more else ""
    seconds = f"{frames / sr:.1f}" if more else f"{frames / sr:.0f}"
    limits.check("audio_seconds", frames / sr,
                 what=f"audio file {name!r} lasts {over}{seconds} s", error=AudioError)
    limits.check("audio_samples", frames * channels,
                 what=f"audio file {name!r} holds {over}{frames * channels:,} samples", error=AudioError)


class _Sequential(sf.SoundFile):
    """A SoundFile read front to back only.

    soundfile seeks to "position + frames read" after every read of a
    seekable file; in a stream of unknown length that seek fails
    (``Internal psf_fseek() failed``), so the position is not kept.
    """

    def seekable(self) -> bool:
        return False


def _read_counting(name: str, sr: int, channels: int) -> tuple[np.ndarray, int]:
    """Decode a file whose header does not give its length, counting the frames.

    The length limits are checked after every block, so a file over them is
    refused having decoded little more than the limit, never all of it.
    """
    blocks = []
    frames = 0
    with _Sequential(name) as f:
        while True:
            block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            frames += block.shape[0]
            _check_length(name, frames, sr, channels, more=True)
            blocks.append(block)
    if not blocks:
        return np.zeros((0, channels), dtype=np.float32), sr
    return np.concatenate(blocks), sr


def _quiet_decoder(path: Path):
    """A context that silences C-level stderr while an MP3 is decoded, else a no-op.

    libmpg123 (libsndfile's MP3 decoder) writes its complaints about a
    damaged frame (``[src/libmpg123/layer3.c:...] error: dequantization
    failed!``) straight to file descriptor 2, around the one ``Error:`` line
    or the result the CLI prints there.  Other formats stay untouched.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return contextlib.nullcontext
    mpeg = head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    return _silenced_fd2 if mpeg or path.suffix.lower() == ".mp3" else contextlib.nullcontext


@contextlib.contextmanager
def _silenced_fd2():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to protect
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def write_audio(
    path: str | os.PathLike[str], y: np.ndarray, *, sr: int, subtype: str | None = "PCM_16",
    metadata: "WavMetadata | None" = None,
) -> None:
    """Write audio atomically; the format follows the file extension.

    The samples go to a hidden ``.<name>.<random>.part`` file beside
    ``path``, which is fsync'ed and then renamed over ``path``; on any
    failure it is removed, so ``path`` is never left half-written.

    Parameters
    ----------
    path : str or path-like
        Ends in .wav, .flac, .ogg, .aif/.aiff or .mp3.
    y : np.ndarray, shape (channels, samples)
        Finite samples; clipped to [-1, 1] unless the subtype is floating point.
    sr : int
        Sample rate in Hz.
    subtype : str or None
        libsndfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.
        ``None`` picks the format's default.  Lossy formats cannot store
        PCM, so for .ogg and .mp3 a ``PCM_*`` subtype (such as the default)
        means the format's own codec (Vorbis, MPEG layer III).
    metadata : musegen.audio.wavmeta.WavMetadata, optional
        Tags written with the samples: in a .wav the ``LIST/INFO``, ``acid``
        and ``smpl`` chunks (:func:`musegen.audio.wavmeta.add_metadata`), in
        other formats the text fields as the format's own tags (title,
        software, comment, genre, date).  The samples are the same either way.

    Raises
    ------
    ParameterError
        Bad ``y``, ``sr``, extension or subtype.
    OutputError
        The file could not be written (missing folder, permissions, disk
        full ...); the message names the path and the reason.
    """
    y = as_audio(y, contiguous=False)
    sr = check_sr(sr)
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError(
            f"cannot tell the audio format of {str(path)!r} from its extension "
            f"(use one of {', '.join(sorted(FORMATS))})"
        )
    if subtype is None or (fmt in _LOSSY and str(subtype).upper().startswith("PCM")):
        subtype = sf.default_subtype(fmt)
    subtype = str(subtype).upper()
    if not sf.check_format(fmt, subtype):
        raise ParameterError(
            f"subtype {subtype!r} cannot be written to a {fmt} file "
            f"(choose from {', '.join(sf.available_subtypes(fmt))})"
        )
    nbytes = y.shape[1] * y.shape[0] * (2 if subtype == "PCM_16" else 4)
    if metadata is not None:
        from musegen.audio import wavmeta

        wavmeta.riff_chunks(metadata, sr=sr, frames=y.shape[1])  # a bad field is refused before writing
    try:
        with atomic_path(path) as tmp:
            # by name, not through a file object: on a full disk libsndfile then fails
            # cleanly instead of printing "Exception ignored" tracebacks from its callbacks
            with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=y.shape[0], format=fmt,
                              subtype=subtype) as out:
                if metadata is not None and fmt != "WAV":
                    _set_tags(out, metadata)
                for frames in _frames(y, subtype):
                    out.write(frames)
            if metadata is not None and fmt == "WAV":
                wavmeta.add_metadata(tmp, metadata)
    except OutputError:
        # libsndfile only says "System error.": name the likely cause
        free = _free_bytes(Path(path).parent)
        if free is not None and free < nbytes:
            raise OutputError(f"cannot write {str(path)!r}: not enough disk space "
                              f"(needs about {nbytes / 2**20:.1f} MB, {free / 2**20:.1f} MB free)") from None
        limit = _file_size_limit()
        if limit is not None and limit < nbytes:
            raise OutputError(f"cannot write {str(path)!r}: it would pass the file-size limit "
                              f"(ulimit -f) of {limit / 2**20:.1f} MB (needs about {nbytes / 2**20:.1f} MB)") from None
        raise


def _set_tags(out: sf.SoundFile, metadata) -> None:
    """The text fields of ``metadata`` as libsndfile strings (Vorbis comments, ID3, AIFF text)."""
    for name in ("title", "software", "comment", "genre", "date"):
        value = getattr(metadata, name)
        if value:
            try:
                setattr(out, name, str(value))
            except RuntimeError:  # a format without that tag: the sidecar still has it
                pass


#: frames converted per block: small enough to stay in cache, so a long signal is never
#: copied whole (a fresh full-length array costs more in page faults than the conversion)
_BLOCK = 1 << 15


def _frames(y: np.ndarray, subtype: str):
    """``(frames, channels)`` C-ordered blocks of ``y`` ready for libsndfile."""
    channels, n = y.shape
    work = np.empty((min(_BLOCK, n), channels), dtype=np.float32)
    pcm16 = np.empty(work.shape, dtype=np.int16) if subtype == "PCM_16" else None
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = work[: stop - start]
        if subtype == "PCM_16":
            # convert to int16 here: libsndfile's float path is 2-3x slower
            np.multiply(y[:, start:stop].T, np.float32(32767.0), out=block)
            np.clip(block, -32768.0, 32767.0, out=block)
            np.rint(block, out=block)
            out = pcm16[: stop - start]
            out[...] = block
            yield out
        else:
            block[...] = y[:, start:stop].T
            if subtype not in ("FLOAT", "DOUBLE"):
                np.clip(block, -1.0, 1.0, out=block)
            yield block


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _free_bytes(folder: Path) -> int | None:
    import shutil

    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def resample(y: np.ndarray, *, sr: int, target_sr: int) -> np.ndarray:
    """Change the sample rate (soxr, high quality).

    Parameters
    ----------
    y : np.ndarray, shape (channels, samples)
    sr : int
        Current rate in Hz.
    target_sr : int
        New rate in Hz.

    Returns
    -------
    np.ndarray, shape (channels, about samples * target_sr / sr), float32
    """
    import soxr

    y = as_audio(y)
    sr = check_sr(sr)
    target_sr = check_sr(target_sr, "target_sr")
    if sr == target_sr:
        return y.copy()
    # soxr takes (frames, channels) and resamples every channel alike.
    out = soxr.resample(np.ascontiguousarray(y.T), sr, target_sr, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)
