"""The operators' live stream as Server-Sent Events, shared by the API (`GET /api/v1/inbox/stream`, an API key)
and the console's inbox page (`GET /inbox/stream`, a signed-in user): inbox events after a cursor, each as
`id` / `event` / `data`, a comment line when idle, until the client leaves or `max_seconds` pass."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from retento.core.db.transactions import transaction
from retento.core.jsonable import jsonable
from retento.inbox import queries
from retento.inbox.config import InboxSettings

HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(row: dict[str, Any]) -> str:
    """One event of the stream (pure)."""
    return f"id: {row['id']}\nevent: {row['type']}\ndata: {json.dumps(jsonable(row), ensure_ascii=False)}\n\n"


async def events(request: Request, *, sessions: Callable[[], sessionmaker[Session]], cfg: InboxSettings,
                 site_ids: list[int] | frozenset[int] | None, cursor: int,
                 max_seconds: float | None = None) -> AsyncIterator[str]:
    """The stream from `cursor` on: new inbox events of `site_ids` (None: every site) as they settle."""

    def read(after_id: int) -> list[dict[str, Any]]:
        with transaction(sessions()) as s:
            return queries.events_after(s, after_id=after_id, site_ids=site_ids)

    loop = asyncio.get_running_loop()
    yield f"retry: 2000\nid: {cursor}\n\n"
    idle = 0.0
    ends = None if max_seconds is None else loop.time() + max_seconds
    while not await request.is_disconnected() and (ends is None or loop.time() < ends):
        rows = await run_in_threadpool(read, cursor)
        for r in rows:
            cursor = r["id"]
            yield frame(r)
        if rows:
            idle = 0.0
            continue
        await asyncio.sleep(cfg.inbox_stream_poll_seconds)
        idle += cfg.inbox_stream_poll_seconds
        if idle >= cfg.inbox_stream_heartbeat_seconds:
            idle = 0.0
            yield ": keep-alive\n\n"


def resume_point(session: Session, after: int | None) -> int:
    """Where a stream starts: after the id the client names, or from now."""
    return after if after is not None else queries.last_event_id(session)
