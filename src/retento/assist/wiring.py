"""What the assist adds to a running application: the served index (`app.assist`) with the default embedder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retento.assist import imports
from retento.assist.config import AssistSettings
from retento.assist.embed import E5Embedder, Embedder
from retento.assist.runtime import Assist, Writer

if TYPE_CHECKING:
    from retento.app import App


def configure(app: App, embedder: Embedder | None = None, writer: Writer | None = None) -> Assist:
    """(Re)make the app's served index; tests pass their own embedder or writer (a language model is off by
    default)."""
    app.assist = Assist(embedder or E5Embedder(AssistSettings().assist_threads), writer)  # type: ignore[attr-defined]
    return app.assist  # type: ignore[attr-defined]


def install(app: App) -> None:
    configure(app)
    app.work.add(imports.QUEUE.name, imports.QUEUE)
    app.worker.add_job("assist.imports", lambda: imports.work_due(
        app.sessions, app.assist.embedder, app.clock))  # type: ignore[attr-defined]
