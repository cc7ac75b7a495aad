"""``musegen studio``: serve the local web studio.

Imports only click at module level: starlette and uvicorn load when the
command runs, so ``musegen --help`` stays fast.
"""

from __future__ import annotations

import click

from musegen.cli.text import echo, shown

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _say(msg: str) -> None:
    echo(msg, err=True)


@click.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to serve on (0: any free one; the address is printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but this machine's loopback lets others on the network use it.")
@click.option("--folder", type=click.Path(file_okay=False),
              help="Studio folder for sketches, jobs and takes (default $XDG_DATA_HOME/musegen/studio, "
                   "i.e. ~/.local/share/musegen/studio).")
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
def studio(port: int, host: str, folder: str | None, no_browser: bool) -> None:
    """A local web studio: pick a preset or drop a MIDI sketch, generate or extend, listen to takes
    with a piano roll and a spectrogram, compare two A/B, re-run one with a setting changed, and
    download WAV, MIDI and JSON. Work runs in a worker process; Ctrl-C stops both."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        from musegen.errors import (
            InputError,  # exit 2, like any missing optional backend asked for
        )

        raise InputError(f"the studio needs {exc.name or 'starlette'}, which is not installed; "
                         "install it with: pip install 'musegen[studio]'") from None
    import threading
    import webbrowser
    from pathlib import Path

    from musegen.studio.app import LOOPBACK, create_app
    from musegen.studio.jobs import default_folder

    where = Path(folder).expanduser() if folder else default_folder()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"cannot use studio folder {shown(str(where))}: {exc.strerror or exc}") from None
    sock = _bind(host, port)
    try:
        app = create_app(where, host=host)
    except BaseException:
        sock.close()
        raise
    if host not in LOOPBACK:
        _say(f"Warning: serving on {shown(host)}: anyone who can reach this machine on the network can use "
             "the studio and read its takes")
    real_port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{real_port}/"
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=real_port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=5))  # Ctrl-C: open pages do not hold it up

    def announce() -> None:  # once the server answers: the address is the payload on stdout
        while not server.started:
            if server.should_exit:
                return
            threading.Event().wait(0.05)
        _say(f"musegen studio on {url} (folder {shown(str(app.state.jobs.folder))}); Ctrl-C stops it")
        click.echo(url)
        if not no_browser:
            webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after its shutdown
        pass
    finally:
        sock.close()
    _say("studio stopped")


def _bind(host: str, port: int):
    """A listening socket on ``host:port``, or one ``Error:`` line saying why not."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.UsageError(f"--host {shown(host)}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot serve on {shown(host)}:{port}: {exc.strerror or exc}") from None
    return sock
