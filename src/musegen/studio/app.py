"""The studio's HTTP side: the page, a small JSON API and the files of the takes.

Routes
------
``GET /``                        the page (``static/index.html``; its scripts and styles under ``/static``)
``GET /api/info``                version, studio folder, limits the page shows
``GET /api/presets``             presets and learned styles (name, description, tempo, key, meter)
``GET /api/engines``             engines with their declared options (the page builds its inputs from them)
``POST /api/upload?name=F.mid``  a MIDI sketch as the raw request body; checked like CLI input
``GET /api/sketches``            the uploaded sketches
``POST /api/jobs``               start a job (JSON: kind, preset, engine, bars/seconds, seed, ...);
                                 kind ``style`` (name, sketches) learns a style, kind ``sweep``
                                 (preset, engine, bars, grid) runs a small batch plan
``GET /api/jobs/{id}``           a job: status, progress, message, error, takes
``POST /api/jobs/{id}/cancel``   cancel it
``DELETE /api/jobs/{id}``        forget a finished job and remove its takes
``GET /api/takes``               every job, newest first (the history)
``GET /files/{path}``            a WAV, MIDI, JSON or PNG inside the studio folder, a sweep's
                                 ``report.html`` and manifest; nothing else

Every error is JSON ``{"error": "..."}`` with a 4xx status.  Requests whose
``Host`` is not the studio's (DNS rebinding) or whose ``Origin`` is another
site's are refused with 403, so a web page elsewhere cannot drive the studio.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from musegen.errors import MusegenError
from musegen.studio.jobs import JOB_ID, SKETCH_ID, Jobs

STATIC = Path(__file__).parent / "static"
#: what /files/ serves, by suffix
FILE_TYPES = {".wav": "audio/wav", ".mid": "audio/midi", ".json": "application/json", ".png": "image/png",
              ".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8",
              ".jsonl": "application/x-ndjson"}
#: the only pages /files/ serves: a sweep's batch report, which the batch runner wrote
PAGES = re.compile(r"sweeps/[0-9a-f]{12}/report\.html")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _hostname(host_header: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``[::1]``."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class SameOrigin:
    """ASGI middleware: only this studio's own host and origin may talk to it."""

    def __init__(self, app, hosts: set[str]):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        why = None
        if _hostname(host).lower() not in self.hosts:
            why = f"host {host!r} is not this studio's"
        origin = headers.get("origin")
        if why is None and origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            why = f"requests from other origins are refused (origin {origin!r})"
        if why is not None:
            return await _error(403, why)(scope, receive, send)
        return await self.app(scope, receive, send)


def _preset_row(preset, name: str, origin: str) -> dict[str, Any]:
    if preset is None:
        return {"name": name, "origin": "error", "error": origin}
    lo, hi = preset.tempo
    return {"name": name, "origin": origin, "description": preset.description, "style": preset.style,
            "tempo": [lo, hi], "key": preset.key, "mode": preset.mode,
            "meter": f"{preset.meter[0]}/{preset.meter[1]}", "engine": preset.engine.name,
            "temperature": preset.engine.temperature}


def create_app(folder: str | Path, *, host: str = "127.0.0.1") -> Starlette:
    """The studio as an ASGI app serving ``folder`` (created if missing).

    Its worker process starts with the app (its lifespan) and is started with
    ``spawn``, which imports the calling script's ``__main__`` again: a script
    that calls this must do so under ``if __name__ == "__main__":``.

    Raises
    ------
    MusegenError
        If another studio holds ``folder``.
    """
    jobs = Jobs(folder)
    root = jobs.folder
    hosts = {h.lower() for h in LOOPBACK} | {host.lower(), f"[{host.lower()}]"}
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def info(request: Request) -> JSONResponse:
        from musegen import __version__, limits
        from musegen.studio import jobs as j

        return JSONResponse({"version": __version__, "folder": str(root),
                             "limits": {"upload_bytes": limits.get("midi_bytes"), "bars": limits.get("bars"),
                                        "seconds": limits.get("seconds"), "variations": j.MAX_VARIATIONS,
                                        "sweep_jobs": j.MAX_SWEEP_JOBS, "sweep_axes": j.MAX_SWEEP_AXES,
                                        "style_files": j.MAX_STYLE_FILES},
                             "sweep_axes": list(j.SWEEP_AXES)})

    def presets(request: Request) -> JSONResponse:
        import musegen.style  # noqa: F401  (learned styles register as a preset source)
        from musegen.presets import DEFAULT_PRESET, list_presets

        return JSONResponse({"default": DEFAULT_PRESET,
                             "presets": [_preset_row(p, n, o) for p, n, o in list_presets()]})

    def engine_table() -> dict[str, Any]:
        with lock:  # an engine's module is imported once to read its options
            if "engines" not in cache:
                from musegen.engines.registry import available_engines, engine_options

                rows = []
                for name, desc in available_engines().items():
                    row: dict[str, Any] = {"name": name, "description": desc, "available": True, "options": []}
                    try:
                        spec = engine_options(name)
                        row["options"] = spec.to_list() if spec is not None else []
                    except MusegenError as exc:
                        row.update(available=False, error=str(exc))
                    except ImportError as exc:
                        row.update(available=False, error=f"cannot load: {exc}")
                    rows.append(row)
                cache["engines"] = {"engines": rows, "kinds": [
                    {"name": "generate", "needs_sketch": False,
                     "help": "new music from the preset; after a sketch when one is chosen"},
                    {"name": "extend", "needs_sketch": True,
                     "help": "continue the sketch's own parts (add_parts: and the preset's missing ones)"}]}
            return cache["engines"]

    def engines(request: Request) -> JSONResponse:
        return JSONResponse(engine_table())

    def warm_up() -> None:
        """Load what the page asks for first while the browser is still opening."""
        with contextlib.suppress(Exception):  # a failure here shows when the page asks
            import musegen.style  # noqa: F401
            from musegen.presets import list_presets

            list_presets()
            engine_table()

    async def upload(request: Request) -> Response:
        from musegen import limits
        from musegen.atomic import atomic_write_bytes
        from musegen.midi.io import load_midi_bytes

        name = request.query_params.get("name", "sketch.mid")
        name = re.sub(r"[^\w.\- ]", "_", Path(name).name)[:100] or "sketch.mid"
        limit = limits.get("midi_bytes")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, limits.message("midi_bytes", f"{name} is {int(declared)} bytes"))
        chunks, got = [], 0
        async for chunk in request.stream():
            got += len(chunk)
            if got > limit:
                return _error(413, limits.message("midi_bytes", f"{name} is over {limit} bytes"))
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            return _error(400, f"{name}: the upload is empty (send the MIDI file as the request body)")
        try:
            from starlette.concurrency import run_in_threadpool

            score = await run_in_threadpool(load_midi_bytes, data, name=name)
        except MusegenError as exc:
            return _error(400, str(exc))
        sketch_id = hashlib.sha256(data).hexdigest()[:16]
        seconds = score.to("second")
        meta = {"id": sketch_id, "name": name, "bytes": len(data),
                "notes": sum(len(t.notes) for t in score.tracks), "tracks": len(score.tracks),
                "duration_s": round(float(seconds.end()), 3), "uploaded": time.time()}
        atomic_write_bytes(root / "sketches" / f"{sketch_id}.mid", data)
        atomic_write_bytes(root / "sketches" / f"{sketch_id}.json", json.dumps(meta).encode())
        return JSONResponse(meta, status_code=201)

    def sketches(request: Request) -> JSONResponse:
        rows = []
        for p in sorted((root / "sketches").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                rows.append(json.loads(p.read_text(encoding="utf-8")))
        rows.sort(key=lambda r: r.get("uploaded", 0), reverse=True)
        return JSONResponse({"sketches": [r for r in rows if SKETCH_ID.fullmatch(str(r.get("id", "")))]})

    async def submit(request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            return _error(400, "the job must be a JSON object")
        from starlette.concurrency import run_in_threadpool

        try:
            job = await run_in_threadpool(jobs.submit, raw)
        except MusegenError as exc:
            return _error(400, str(exc))
        return JSONResponse(job, status_code=201)

    def _job_or_404(job_id: str):
        if not JOB_ID.fullmatch(job_id):
            return None, _error(404, f"no job {job_id!r}")
        job = jobs.get(job_id)
        return (job, None) if job is not None else (None, _error(404, f"no job {job_id!r}"))

    def job(request: Request) -> JSONResponse:
        found, err = _job_or_404(request.path_params["id"])
        return err or JSONResponse(found)

    def cancel(request: Request) -> JSONResponse:
        found, err = _job_or_404(request.path_params["id"])
        return err or JSONResponse(jobs.cancel(found["id"]))

    def delete(request: Request) -> JSONResponse:
        found, err = _job_or_404(request.path_params["id"])
        if err:
            return err
        try:
            return JSONResponse(jobs.delete(found["id"]))
        except MusegenError as exc:
            return _error(409, str(exc))

    def takes(request: Request) -> JSONResponse:
        return JSONResponse({"jobs": jobs.history()})

    def files(request: Request) -> Response:
        rel = request.path_params["path"]
        if "\x00" in rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
            return _error(403, "only files inside the studio folder are served")
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            return _error(403, "only files inside the studio folder are served")
        if target.suffix.lower() not in FILE_TYPES:
            return _error(403, f"only {', '.join(FILE_TYPES)} files are served")
        if target.suffix.lower() == ".html" and not PAGES.fullmatch(target.relative_to(root).as_posix()):
            return _error(403, "the only pages served are sweeps' report.html")
        if not target.is_file():
            return _error(404, f"no file {rel!r} in the studio folder")
        download = request.query_params.get("download") is not None
        return FileResponse(target, media_type=FILE_TYPES[target.suffix.lower()],
                            filename=target.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        jobs.start()
        threading.Thread(target=warm_up, name="musegen-studio-warm-up", daemon=True).start()
        try:
            yield
        finally:
            jobs.close()

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/presets", presets),
        Route("/api/engines", engines),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/sketches", sketches),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{id}", job),
        Route("/api/jobs/{id}", delete, methods=["DELETE"]),
        Route("/api/jobs/{id}/cancel", cancel, methods=["POST"]),
        Route("/api/takes", takes),
        Route("/files/{path:path}", files),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(SameOrigin, hosts=hosts)
    app.state.jobs = jobs
    return app
