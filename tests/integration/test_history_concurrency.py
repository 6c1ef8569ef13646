"""Concurrent writers never make a `since id` reader skip a change (ids become visible in commit order)."""

import threading

from retento.core.db.transactions import transaction
from retento.history import service as history
from tests import factories as f


def test_reader_following_since_id_during_concurrent_writes_sees_everything(app):
    f.site(app)
    ids = [f.order(app, external_id=f"o{i}") for i in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(order_id: int) -> None:
        try:
            for n in range(25):
                f.edit_order(app, order_id, manager_comment=f"{order_id}-{n}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    seen: list[int] = []

    def reader() -> None:
        cursor = 0
        while True:
            done = stop.is_set()
            with transaction(app.sessions) as s:
                page = history.since(s, since_id=cursor, limit=50)
            seen.extend(r.id for r in page)
            if page:
                cursor = page[-1].id
            elif done:
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in ids]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert not errors
    with transaction(app.sessions) as s:
        everything = [h.id for h in history.since(s, limit=10_000)]
    assert len(everything) == 4 + 4 * 25
    assert seen == everything
