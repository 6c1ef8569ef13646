"""Group commit: small write requests of concurrent threads share one transaction, and each caller returns only
once that transaction has committed (a durable acknowledgement, as with a transaction of its own).

One committer thread per process (started on first use) takes whatever work has queued up while the previous
transaction was committing, runs it in a new transaction and commits once for all of it (a transaction per site
scope among them: work runs in its caller's context, so its session sees what the request's API key may see). Under light load a
batch is one request and costs what it did before (plus handing it to another thread); under load the
per-transaction costs (BEGIN, COMMIT, the change-log claim, the session, the WAL flush) are shared by the whole
batch, which is where a single-event `POST` spent most of its time.

Work of one kind can also be stored set-based (`run_many` / `submit`): the items of the concurrent requests that
name the same `store` go to one call `store(session, items)`, which answers each item (inbound webhook messages: one
statement per batch for what was one per message). An async caller (`submit`) waits without holding a thread.

If a piece of work raises, the batch is rolled back; that one runs again alone (and fails with its own error, a
bad request's 4xx) and the others again together (the items of a set-based call that raised: each alone). If the shared commit fails, every caller gets that error, as
with a commit of its own. Work must therefore be a function of the session only (no effects outside the transaction): it may run
more than once.
"""

from __future__ import annotations

import asyncio
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
Store = Callable[[Session, list[Any]], list[Any]]  # items -> one answer per item, in their order


class _Work(Generic[T]):
    __slots__ = ("context", "done", "error", "fn", "item", "result", "scope", "store", "wake")

    def __init__(self, fn: Callable[[Session], T], store: Store | None = None, item: Any = None,
                 wake: Callable[[], None] | None = None) -> None:
        self.fn, self.done, self.store, self.item, self.wake = fn, threading.Event(), store, item, wake
        self.context, self.scope = contextvars.copy_context(), scoping.current()  # the caller's request
        self.result: T | None = None
        self.error: BaseException | None = None

    def finish(self) -> None:
        if self.done.is_set():
            return
        self.done.set()
        if self.wake is not None:
            try:
                self.wake()
            except RuntimeError:  # the caller's event loop is closed: nobody waits any more
                pass

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


def _one(store: Store, item: Any) -> Callable[[Session], Any]:
    return lambda session: store(session, [item])[0]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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
        if not self._put(work):
            return _alone(self._factory, work)
        work.done.wait()
        return work.outcome()

    def run_many(self, store: Store, item: Any) -> Any:
        """`store(session, [..., item, ...])` with the items of other requests naming the same `store`, in a
        shared transaction; this item's answer once that has committed."""
        work: _Work[Any] = _Work(_one(store, item), store, item)
        if not self._put(work):
            return _alone(self._factory, work)
        work.done.wait()
        return work.outcome()

    async def submit(self, store: Store, item: Any) -> Any:
        """`run_many` for a coroutine: it waits for the commit without holding a thread."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        work: _Work[Any] = _Work(_one(store, item), store, item, lambda: loop.call_soon_threadsafe(_settle, done))
        if not self._put(work):
            return _alone(self._factory, work)
        await done
        return work.outcome()

    def _put(self, work: _Work[Any]) -> bool:
        """Queue the work for the committer thread (started on first use); False once closed."""
        with self._state:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put(work)
        return True

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
                work.finish()

    def _commit_group(self, group: list[_Work[Any]]) -> None:
        try:
            pending = group
            while len(pending) > 1:
                current: list[_Work[Any]] | None = None
                try:
                    with transaction(self._factory) as session:
                        for current in _units(pending):
                            _apply(session, current)
                        current = None  # from here on, the commit
                    return
                except Exception as exc:  # noqa: BLE001 - the batch is rolled back; see below
                    log.debug("group commit of %s requests failed: %r", len(pending), exc)
                    if current is None:  # the commit itself: as if each had failed to commit alone (a retry
                        for work in pending:  # could store twice what a lost connection did commit)
                            work.error = exc
                        return
                    for work in current:  # the failing one(s), each with its own error
                        _alone(self._factory, work, deliver=True)
                    failed = set(map(id, current))
                    pending = [w for w in pending if id(w) not in failed]  # the others together again
            for work in pending:
                _alone(self._factory, work, deliver=True)
        finally:
            for work in group:
                work.finish()


def _units(works: list[_Work[Any]]) -> list[list[_Work[Any]]]:
    """The batch's calls in order: a plain piece of work alone, the items of one `store` together (at the place
    of the first of them)."""
    units: list[list[_Work[Any]]] = []
    by_store: dict[Any, list[_Work[Any]]] = {}
    for work in works:
        if work.store is None:
            units.append([work])
        elif (unit := by_store.get(work.store)) is not None:
            unit.append(work)
        else:
            by_store[work.store] = unit = [work]
            units.append(unit)
    return units


def _apply(session: Session, unit: list[_Work[Any]]) -> None:
    first = unit[0]
    if first.store is None:
        first.result = first.fn(session)
        return
    answers = first.store(session, [w.item for w in unit])
    for work, answer in zip(unit, answers, strict=True):
        work.result = answer


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
