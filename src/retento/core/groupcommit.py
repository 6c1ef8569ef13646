"""Group commit: small write requests of concurrent threads share one transaction, and each caller returns only
once that transaction has committed (a durable acknowledgement, as with a transaction of its own).

One committer thread per process (started on first use) takes whatever work has queued up while the previous
transaction was committing, runs it in a new transaction and commits once for all of it (a transaction per site
scope among them: work runs in its caller's context, so its session sees what the request's API key may see). Under light load a
batch is one request and costs what it did before (plus handing it to another thread); under load the
per-transaction costs (BEGIN, COMMIT, the change-log claim, the session, the WAL flush) are shared by the whole
batch, which is where a single-event `POST` spent most of its time.

If a piece of work raises, the batch is rolled back; that one runs again alone (and fails with its own error, a
bad request's 4xx) and the others again together. If the shared commit fails, every caller gets that error, as
with a commit of its own. Work must therefore be a function of the session only (no effects outside the transaction): it may run
more than once.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from retento.core import scoping
from retento.core.db.transactions import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 256


class _Work(Generic[T]):
    __slots__ = ("context", "done", "error", "fn", "result", "scope")

    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn, self.done = fn, threading.Event()
        self.context, self.scope = contextvars.copy_context(), scoping.current()  # the caller's request
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, factory: sessionmaker[Session], *, max_batch: int = MAX_BATCH) -> None:
        self._factory, self._max_batch = factory, max_batch
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[[Session], T]) -> T:
        """`fn(session)` in a transaction shared with other threads' work; its result once that has committed."""
        work = _Work(fn)
        with self._state:
            if self._closed:
                return _alone(self._factory, work)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put(work)
        work.done.wait()
        if work.error is not None:
            raise work.error
        return work.result  # type: ignore[return-value]

    @property
    def queued(self) -> int:
        """Work waiting for the next transaction (roughly: the queue's size as of now)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commit what is queued, then stop the thread; later work runs in transactions of its own."""
        with self._state:
            self._closed = True
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Work[Any]]) -> None:
        """The batch's work, a transaction per site scope (requests of one site-limited API key share theirs;
        see `scoping`), each made in the context of its first request so its session carries that scope."""
        groups: dict[frozenset[int] | None, list[_Work[Any]]] = {}
        for work in batch:
            groups.setdefault(work.scope, []).append(work)
        try:
            for group in groups.values():
                group[0].context.run(self._commit_group, group)
        except BaseException as exc:  # the thread is stopping (interpreter exit): nobody may wait forever
            for work in batch:
                if not work.done.is_set():
                    work.error = exc
            raise
        finally:
            for work in batch:
                work.done.set()

    def _commit_group(self, group: list[_Work[Any]]) -> None:
        try:
            pending = group
            while len(pending) > 1:
                current: _Work[Any] | None = None
                try:
                    with transaction(self._factory) as session:
                        for current in pending:
                            current.result = current.fn(session)
                        current = None  # from here on, the commit
                    return
                except Exception as exc:  # noqa: BLE001 - the batch is rolled back; see below
                    log.debug("group commit of %s requests failed: %r", len(pending), exc)
                    if current is None:  # the commit itself: as if each had failed to commit alone (a retry
                        for work in pending:  # could store twice what a lost connection did commit)
                            work.error = exc
                        return
                    _alone(self._factory, current, deliver=True)  # the failing one, with its own error
                    pending = [w for w in pending if w is not current]  # the others together again
            for work in pending:
                _alone(self._factory, work, deliver=True)
        finally:
            for work in group:
                work.done.set()


def _alone(factory: sessionmaker[Session], work: _Work[T], *, deliver: bool = False) -> T:
    """The work in a transaction of its own; with `deliver`, its error is kept for the caller instead."""
    try:
        with transaction(factory) as session:
            work.result = work.fn(session)
    except Exception as exc:
        if not deliver:
            raise
        work.error = exc
    return work.result  # type: ignore[return-value]
