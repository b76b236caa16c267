"""The playground's web app: a Starlette ASGI app over :mod:`.session`.

Routes (all JSON but the page and the stream; every error is ``{"error": message}`` with a 4xx):

- ``GET /``                                  the page (``static/index.html``), ``/static/*`` its assets
- ``GET /api/catalog``                       datasets, activations, optimizers, ranges, every scheme
- ``POST /api/sessions?<settings>``          a new session from URL settings -> its state and points
- ``POST /api/sessions/{id}/settings?<...>`` new settings (a fresh start) -> state and points
- ``POST /api/sessions/{id}/{action}``       play, pause, step or reset (rewind: the same start) -> state
- ``POST /api/sessions/{id}/data``            ``{"csv": text}``: train on your own points (at most
  ``upload.MAX_BYTES``, refused with 413 before anything is parsed) -> state and points
- ``GET /api/sessions/{id}/export/snippet?run=i``  Python that rebuilds run i's initial weights;
  ``.../export/weights?run=i`` its current weights (a ``.pt`` state dict); ``.../export/record`` JSON
- ``GET /api/sessions/{id}/units?run=i&layer=l``  hidden layer l's units' pre-activations on a grid
- ``GET /api/settings/nearest?<settings>``   a refused link's nearest allowed settings and what was refused
- ``GET /api/sessions/{id}``                 the latest state; ``.../points`` the data
- ``GET /api/sessions/{id}/stream``          Server-Sent Events: a ``state`` event per new snapshot
  (at most ``streams_per_session`` per session and ``max_streams`` in all, 429 beyond)
- ``DELETE /api/sessions/{id}``, ``POST /api/sessions/{id}/close``   free it (the page's unload fetch)

Every request first passes :class:`.guard.Guard` (Host, Origin, JSON content type for POSTs). The
event loop never takes a session's lock: it reads published snapshots, and whatever must lock
(creating, changing, closing a session) runs on the thread pool.

Nothing a request sends is evaluated or used as a path: settings are parsed into numbers and registry
names (:mod:`.settings`), and the only files served are the package's own static assets.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InitlabError
from . import export
from . import settings as settings_mod
from . import upload
from .guard import Guard
from .session import Manager, Session, TooMany

STATIC = resources.files("initlab.playground") / "static"
STREAM_POLL = 0.05   # seconds between checks for a new snapshot
KEEPALIVE = 15.0     # seconds between SSE comments when nothing changes
ACTIONS = ("play", "pause", "step", "reset")
STREAMS_PER_SESSION = 4   # live-update streams one session may have open (a tab needs one)
MAX_STREAMS = 64          # live-update streams open in all


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Stream(StreamingResponse):
    """A streaming response that calls ``on_close`` when it ends, however it ends."""

    def __init__(self, content, on_close, **kwargs):
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def create_app(manager: Manager | None = None, *, start_worker: bool = True, host: str = "127.0.0.1",
               port: int | None = None, streams_per_session: int = STREAMS_PER_SESSION,
               max_streams: int = MAX_STREAMS) -> Starlette:
    """The ASGI app. ``manager`` holds the sessions (a fresh :class:`Manager` by default); its worker
    thread starts with the app unless ``start_worker`` is False (tests step it by hand).

    ``host`` and ``port`` are where it is served: requests whose ``Host`` names anything else are
    refused (see :mod:`.guard`; ``port=None`` accepts any port). ``streams_per_session`` and
    ``max_streams`` cap the live-update streams."""
    manager = manager or Manager()
    api = _Api(manager, streams_per_session, max_streams)

    @asynccontextmanager
    async def lifespan(app):
        if start_worker:
            manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = Starlette(routes=_routes(api), lifespan=lifespan, middleware=[Middleware(Guard, host=host, port=port)],
                    exception_handlers={InitlabError: _bad_input, HTTPException: _http_error,
                                        Exception: _server_error})
    app.state.manager = manager
    app.state.streams = api.streams
    return app


def _routes(api: "_Api") -> list:
    return [
        Route("/", _page),
        Route("/api/catalog", _catalog),
        Route("/api/sessions", api.create, methods=["POST"]),
        Route("/api/sessions/{sid}", api.state, methods=["GET"]),
        Route("/api/sessions/{sid}", api.close, methods=["DELETE"]),
        Route("/api/sessions/{sid}/close", api.close, methods=["POST"]),
        Route("/api/sessions/{sid}/points", api.points),
        Route("/api/sessions/{sid}/stream", api.stream),
        Route("/api/sessions/{sid}/settings", api.update, methods=["POST"]),
        Route("/api/sessions/{sid}/data", api.upload, methods=["POST"]),
        Route("/api/sessions/{sid}/units", api.units),
        Route("/api/sessions/{sid}/export/{what}", api.export),
        Route("/api/settings/nearest", _nearest),
        Route("/api/sessions/{sid}/{action}", api.control, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]


async def _page(request: Request) -> Response:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


async def _catalog(request: Request) -> Response:
    return JSONResponse(settings_mod.catalog())


async def _nearest(request: Request) -> Response:
    s, refused = settings_mod.nearest(request.query_params.multi_items())
    return JSONResponse({"query": s.query(), "settings": s.to_dict(), "refused": refused})


def _index(request: Request, key: str, default: int = 0) -> int:
    text = request.query_params.get(key, str(default))
    if not text.isdigit() or len(text) > 3:
        raise InitlabError(f"{key} must be a small whole number; got {text[:20]!r}.")
    return int(text)


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is larger than ``limit`` bytes: first by the
    length it announces, then by what arrives, so nothing larger is ever read whole or parsed."""
    too_large = upload.TooLarge(f"the upload is larger than {limit // 1024} KiB, the playground's limit "
                                f"({upload.MAX_ROWS} rows of x1, x2, label fit in it).")
    length = request.headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > limit):
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _parsed(request: Request) -> settings_mod.Settings:
    return settings_mod.parse(request.query_params.multi_items())


async def _bad_input(request: Request, exc: Exception) -> Response:
    status = 429 if isinstance(exc, TooMany) else 413 if isinstance(exc, upload.TooLarge) else 400
    return _error(status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    return _error(exc.status_code, exc.detail if isinstance(exc, HTTPException) else str(exc))


async def _server_error(request: Request, exc: Exception) -> Response:
    # a bug, not bad input: say so in one line, never a traceback
    return _error(500, f"the playground failed: {type(exc).__name__}. Please report it.")


class _Api:
    """The session routes over one :class:`Manager`, and the live-update streams open: ``streams``,
    session id -> open streams (only the event loop touches it)."""

    def __init__(self, manager: Manager, streams_per_session: int, max_streams: int):
        self.manager, self.streams_per_session, self.max_streams = manager, streams_per_session, max_streams
        self.streams: dict[str, int] = {}

    def session_of(self, request: Request) -> Session:
        try:
            return self.manager.get(request.path_params["sid"])
        except KeyError:
            raise HTTPException(404, "no such session (it may have been freed after a while without a "
                                     "client); reload the page.") from None

    async def create(self, request: Request) -> Response:
        settings = _parsed(request)
        session = await run_in_threadpool(self.manager.create, settings)
        return JSONResponse({**session.state(), "points": session.points}, status_code=201)

    async def update(self, request: Request) -> Response:
        session = self.session_of(request)
        settings = _parsed(request)
        await run_in_threadpool(session.change, settings)
        return JSONResponse({**session.state(), "points": session.points})

    async def control(self, request: Request) -> Response:
        session = self.session_of(request)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _error(404, f"unknown action '{action}'; use play, pause, step or reset.")
        await run_in_threadpool(session.control, action)
        return JSONResponse(session.state())

    async def upload(self, request: Request) -> Response:
        session = self.session_of(request)
        raw = await _body(request, upload.MAX_BYTES)
        X, y = await run_in_threadpool(lambda: upload.parse(upload.body_text(raw)))
        await run_in_threadpool(session.upload, X, y)
        return JSONResponse({**session.state(), "points": session.points})

    async def units(self, request: Request) -> Response:
        session = self.session_of(request)
        run, layer = _index(request, "run"), _index(request, "layer", 1)
        return JSONResponse(await run_in_threadpool(session.units, run, layer))

    async def export(self, request: Request) -> Response:
        session = self.session_of(request)
        what, run = request.path_params["what"], _index(request, "run")
        if what == "snippet":
            text = await run_in_threadpool(export.snippet, session, run)
            return Response(text, media_type="text/x-python; charset=utf-8", headers={
                "Content-Disposition": f'inline; filename="initlab-playground-run{run}.py"'})
        if what == "weights":
            data = await run_in_threadpool(export.weights, session, run)
            return Response(data, media_type="application/octet-stream", headers={
                "Content-Disposition": f'attachment; filename="initlab-playground-run{run}.pt"'})
        if what == "record":
            doc = await run_in_threadpool(export.record, session)
            return JSONResponse(doc, headers={"Content-Disposition": 'attachment; filename="initlab-playground-record.json"'})
        return _error(404, f"unknown export '{what[:40]}'; use snippet, weights or record.")

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.session_of(request).state())

    async def points(self, request: Request) -> Response:
        return JSONResponse(self.session_of(request).points)

    async def close(self, request: Request) -> Response:
        if not await run_in_threadpool(self.manager.close, request.path_params["sid"]):
            return _error(404, "no such session.")
        return Response(status_code=204)

    def release(self, sid: str) -> None:
        self.streams[sid] -= 1
        if not self.streams[sid]:
            del self.streams[sid]

    async def stream(self, request: Request) -> Response:
        session = self.session_of(request)
        if self.streams.get(session.id, 0) >= self.streams_per_session:
            return _error(429, f"this session has {self.streams_per_session} live-update streams open, its limit; "
                               f"close another tab showing it.")
        if sum(self.streams.values()) >= self.max_streams:
            return _error(429, f"the playground has {self.max_streams} live-update streams open, its limit; "
                               f"close some tabs.")
        self.streams[session.id] = self.streams.get(session.id, 0) + 1
        return _Stream(self.events(request, session), lambda: self.release(session.id),
                       media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def events(self, request: Request, session: Session):
        """Server-Sent Events: a ``state`` event per new snapshot, a keep-alive comment when quiet, and
        ``closed`` when the session is gone or the client left."""
        sent, quiet = -1, 0.0
        yield "retry: 2000\n\n"
        while self.manager.sessions.get(session.id) is session:
            if await request.is_disconnected():
                break
            session.touch()
            snap = session.published  # the latest, as published: no lock
            if snap.version != sent:
                sent = snap.version
                yield f"event: state\ndata: {snap.text}\n\n"
                quiet = 0.0
            elif quiet >= KEEPALIVE:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(STREAM_POLL)
            quiet += STREAM_POLL
        yield "event: closed\ndata: {}\n\n"


def serve(host: str = "127.0.0.1", port: int = 8000, open_browser: bool = True, query: str = "",
          manager: Manager | None = None, log_level: str = "warning") -> None:
    """Run the playground with uvicorn until interrupted; open the browser at it unless told not to."""
    import threading
    import webbrowser

    import uvicorn

    app = create_app(manager, host=host, port=port)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/" + (f"?{query}" if query else "")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
