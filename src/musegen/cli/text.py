"""User-provided text made safe for a terminal.

A preset's description, a style's name, a file name or a batch job's error
may hold characters a terminal executes instead of showing: ESC and the
CSI/OSC sequences it starts (clear the screen, set the title, recolour),
BEL, a carriage return or backspace that overwrites what was printed, C1
controls, and bidi format characters that reorder the line.  :func:`shown`
writes each such character as a visible escape (``\\x1b``, ``\\u202e``), so
what the user sees is what the text holds; :func:`echo` is ``click.echo``
with that applied, and every line the CLI prints goes through one of them.

JSON output needs nothing more (``json.dumps`` escapes every non-ASCII and
control character), and TOML output escapes its strings itself
(:mod:`musegen.tomlout`).
"""

from __future__ import annotations

import re

import click

__all__ = ["echo", "shown"]

#: C0 controls but tab and newline, DEL, C1 controls, bidi marks/embeddings/overrides/isolates,
#: and the line and paragraph separators
_EXECUTED = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_KEEP_NEWLINES = re.compile(f"[{_EXECUTED}]")
_ONE_LINE = re.compile(f"[{_EXECUTED}\n]")


def _escape(match: re.Match[str]) -> str:
    o = ord(match.group())
    return f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}"


def shown(text: object, *, newlines: bool = False) -> str:
    """``str(text)`` with every character a terminal would execute written as ``\\xNN``/``\\uNNNN``.

    Tabs are kept.  Newlines are kept with ``newlines=True`` (a message or
    document of several lines); otherwise they are escaped too, so one field
    (a table cell, a name) stays on one line.

    >>> shown("a\\x1b[2Jb\\x07")
    'a\\\\x1b[2Jb\\\\x07'
    """
    s = str(text)
    return (_KEEP_NEWLINES if newlines else _ONE_LINE).sub(_escape, s)


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` of :func:`shown` text (newlines kept): stdout, or stderr with ``err=True``."""
    click.echo(shown(text, newlines=True), err=err, nl=nl)


def error_line(exc: click.ClickException) -> str:
    """The one ``Error: ...`` line for a click error (bad option, missing argument, bad choice).

    click's own display is three lines or more (the usage, a hint, a blank
    line, the error); the README promises one line for every error, so the
    message and the hint are joined.  The message is :func:`shown`: it
    quotes what the user typed.
    """
    msg = " ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        help_option = (ctx.help_option_names or ["--help"])[-1]
        end = "" if msg.endswith((".", "?", "!")) else "."
        msg = f"{msg}{end} Try '{ctx.command_path} {help_option}' for help."
    return "Error: " + shown(msg)
