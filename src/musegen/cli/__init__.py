"""Command-line interface (filled in by cli/main.py)."""


def main() -> None:
    try:
        from musegen.cli.main import run
    except KeyboardInterrupt:  # Ctrl-C while the CLI is still loading: no traceback
        import sys

        sys.stderr.write("Error: interrupted\n")
        raise SystemExit(130) from None
    run()
