"""Command-line interface (filled in by cli/main.py)."""


def main() -> None:
    from musegen.cli.main import run

    run()
