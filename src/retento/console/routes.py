"""The console's entry point: its static files and every registered page (`App.parts.console_pages`), added to
the HTTP application by `install`. Pages are thin: they call the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from retento.app import App
from retento.console.web import STATIC

CACHE = "public, max-age=31536000, immutable"  # static URLs carry their content hash (web.static_url)


def install(api: FastAPI, app: App) -> None:
    """Serve the console at `/` from the same process as the API."""

    @api.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        file = (STATIC / path).resolve()
        if not file.is_file() or STATIC.resolve() not in file.parents:
            raise HTTPException(404)
        return FileResponse(file, headers={"Cache-Control": CACHE})

    for page in app.parts.console_pages.values():
        api.include_router(page.router)
