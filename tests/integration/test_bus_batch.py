"""Batch delivery: a whole batch in one call; if it fails, one event at a time, so only a bad event is retried."""

import pytest

from tests import factories as f


def test_batch_handler_gets_the_batch_and_falls_back_to_single_events(app):
    f.site(app)
    batches, singles = [], []

    def batch(session, events):
        if any(e.type == "order_created" for e in events):
            raise RuntimeError("this batch fails")
        batches.append([e.id for e in events])

    app.bus.subscribe("batchy", lambda s, e: singles.append(e.id), types=["customer_created", "order_created"],
                      batch_handler=batch)
    f.customer(app)
    f.customer(app)
    app.worker.tick()
    assert batches == [[1, 2]] and singles == []
    f.order(app)
    f.customer(app)
    app.worker.tick()
    assert batches == [[1, 2]] and len(singles) == 2  # the failed batch went through the per-event handler
    app.worker.tick()
    assert len(singles) == 2  # and nothing is delivered twice


def test_a_subscriber_reads_only_the_columns_it_names(app):
    f.site(app)
    seen = []

    def batch(session, events):
        seen.extend((e._fields, e.id, e.customer_id) for e in events)
        raise RuntimeError("and one by one")

    app.bus.subscribe("narrow", lambda s, e: seen.append((e._fields, e.id, e.customer_id)),
                      types=["customer_created", "order_created"], batch_handler=batch, columns=("id", "customer_id"))
    cid = f.customer(app)
    f.order(app, customer={"id": cid})
    app.worker.tick()
    assert [s[0] for s in seen] == [("id", "customer_id")] * 4  # the batch, then each event alone
    assert [s[2] for s in seen] == [cid] * 4 and seen[0][1] < seen[1][1]
    for wrong in [("customer_id",), ("id", "nothing")]:
        with pytest.raises(ValueError, match="columns"):
            app.bus.subscribe(f"wrong{len(wrong)}", lambda s, e: None, columns=wrong)
