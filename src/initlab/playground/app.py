"""The playground's web app: a Starlette ASGI app over :mod:`.session`.

Routes (all JSON but the page and the stream; every error is ``{"error": message}`` with a 4xx):

- ``GET /``                                  the page (``static/index.html``), ``/static/*`` its assets
- ``GET /api/catalog``                       datasets, activations, optimizers, ranges, every scheme
- ``POST /api/sessions?<settings>``          a new session from URL settings -> its state and points
- ``POST /api/sessions/{id}/settings?<...>`` new settings (a fresh start) -> state and points
- ``POST /api/sessions/{id}/{action}``       play, pause, step or reset -> state
- ``GET /api/sessions/{id}``                 the latest state; ``.../points`` the data
- ``GET /api/sessions/{id}/stream``          Server-Sent Events: a ``state`` event per new snapshot
- ``DELETE /api/sessions/{id}``, ``POST /api/sessions/{id}/close``   free it (the page's unload beacon)

Nothing a request sends is evaluated or used as a path: settings are parsed into numbers and registry
names (:mod:`.settings`), and the only files served are the package's own static assets.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import InitlabError
from . import settings as settings_mod
from .session import Manager, Session, TooMany

STATIC = resources.files("initlab.playground") / "static"
STREAM_POLL = 0.05   # seconds between checks for a new snapshot
KEEPALIVE = 15.0     # seconds between SSE comments when nothing changes
ACTIONS = ("play", "pause", "step", "reset")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(manager: Manager | None = None, *, start_worker: bool = True) -> Starlette:
    """The ASGI app. ``manager`` holds the sessions (a fresh :class:`Manager` by default); its worker
    thread starts with the app unless ``start_worker`` is False (tests step it by hand)."""
    manager = manager or Manager()

    def session_of(request: Request) -> Session:
        try:
            return manager.get(request.path_params["sid"])
        except KeyError:
            raise HTTPException(404, "no such session (it may have been freed after a while without a "
                                     "client); reload the page.") from None

    def parsed(request: Request) -> settings_mod.Settings:
        return settings_mod.parse(request.query_params.multi_items())

    async def page(request: Request) -> Response:
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    async def catalog(request: Request) -> Response:
        return JSONResponse(settings_mod.catalog())

    async def create(request: Request) -> Response:
        settings = parsed(request)
        session = await run_in_threadpool(manager.create, settings)
        return JSONResponse({**session.state(), "points": session.points}, status_code=201)

    async def update(request: Request) -> Response:
        session = session_of(request)
        settings = parsed(request)
        await run_in_threadpool(_apply, session, settings)
        return JSONResponse({**session.state(), "points": session.points})

    async def control(request: Request) -> Response:
        session = session_of(request)
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _error(404, f"unknown action '{action}'; use play, pause, step or reset.")
        await run_in_threadpool(session.control, action)
        return JSONResponse(session.state())

    async def state(request: Request) -> Response:
        return JSONResponse(session_of(request).state())

    async def points(request: Request) -> Response:
        return JSONResponse(session_of(request).points)

    async def close(request: Request) -> Response:
        if not manager.close(request.path_params["sid"]):
            return _error(404, "no such session.")
        return Response(status_code=204)

    async def stream(request: Request) -> Response:
        session = session_of(request)

        async def events():
            sent, quiet = -1, 0.0
            yield "retry: 2000\n\n"
            while manager.sessions.get(session.id) is session:
                if await request.is_disconnected():
                    break
                session.touch()
                if session.version != sent:
                    snap = session.state()
                    sent = snap.get("version", sent)
                    yield f"event: state\ndata: {json.dumps(snap)}\n\n"
                    quiet = 0.0
                elif quiet >= KEEPALIVE:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(STREAM_POLL)
                quiet += STREAM_POLL
            yield "event: closed\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def bad_input(request: Request, exc: Exception) -> Response:
        status = 429 if isinstance(exc, TooMany) else 400
        return _error(status, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        return _error(exc.status_code, exc.detail if isinstance(exc, HTTPException) else str(exc))

    async def server_error(request: Request, exc: Exception) -> Response:
        # a bug, not bad input: say so in one line, never a traceback
        return _error(500, f"the playground failed: {type(exc).__name__}. Please report it.")

    @asynccontextmanager
    async def lifespan(app):
        if start_worker:
            manager.start()
        try:
            yield
        finally:
            manager.stop()

    routes = [
        Route("/", page),
        Route("/api/catalog", catalog),
        Route("/api/sessions", create, methods=["POST"]),
        Route("/api/sessions/{sid}", state, methods=["GET"]),
        Route("/api/sessions/{sid}", close, methods=["DELETE"]),
        Route("/api/sessions/{sid}/close", close, methods=["POST"]),
        Route("/api/sessions/{sid}/points", points),
        Route("/api/sessions/{sid}/stream", stream),
        Route("/api/sessions/{sid}/settings", update, methods=["POST"]),
        Route("/api/sessions/{sid}/{action}", control, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={InitlabError: bad_input, HTTPException: http_error,
                                        Exception: server_error})
    app.state.manager = manager
    return app


def _apply(session: Session, settings: settings_mod.Settings) -> None:
    """New settings start afresh, but a new speed alone changes only the speed."""
    with session.lock:
        old = session.settings
        if settings.to_dict() == {**old.to_dict(), "speed": settings.speed}:
            old.speed = settings.speed
            session._refresh()
            return
        session.playing = False
        session.apply(settings)


def serve(host: str = "127.0.0.1", port: int = 8000, open_browser: bool = True, query: str = "",
          manager: Manager | None = None, log_level: str = "warning") -> None:
    """Run the playground with uvicorn until interrupted; open the browser at it unless told not to."""
    import threading
    import webbrowser

    import uvicorn

    app = create_app(manager)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/" + (f"?{query}" if query else "")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
