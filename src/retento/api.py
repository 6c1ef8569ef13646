"""The HTTP entry point: builds the FastAPI application from the App, with the routers it registers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from retento import __version__
from retento.app import App
from retento.console import routes as console
from retento.core.db.engine import read_sessions
from retento.core.db.transactions import transaction
from retento.core.limits import BodyLimit
from retento.core.rest import routing
from retento.core.rest.problems import no_route
from retento.queues.service import warnings


def create_app(app: App, *, with_worker: bool = False) -> FastAPI:
    """The ASGI app. With `with_worker`, the worker runs in a thread of this process (embedded mode)."""

    @asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if with_worker:
            thread = threading.Thread(target=app.worker.run, args=(stop,), name="retento-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            app.bus.wakeup.set()
            if thread is not None:
                thread.join(timeout=30)

    api = FastAPI(
        title="Retento",
        version=__version__,
        description="CRM-marketing engine for online retailers",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    api.state.app = app
    api.add_middleware(BodyLimit, limit=app.settings.api_max_body_bytes)

    @api.get("/api/health", tags=["system"], summary="Liveness and database check, and deferred work that waits "
             "for what no worker here can do (`warnings`, e.g. a channel without settings)")
    def health() -> dict[str, Any]:
        with transaction(read_sessions(app.engine)) as s:
            notes = warnings(s, app.work, now=app.clock.now())
        return {"status": "ok", "version": __version__, "warnings": notes}

    for router in app.parts.routers.values():
        api.include_router(router)
    console.install(api, app)  # the web console at / (its pages: app.parts.console_pages)
    routing.install(api, no_route=no_route)
    return api
