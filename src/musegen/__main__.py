try:
    from musegen.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still loading us: no traceback
    import sys

    sys.stderr.write("Error: interrupted\n")
    raise SystemExit(130) from None

main()
