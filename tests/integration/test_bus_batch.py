"""Batch delivery: a whole batch in one call; if it fails, one event at a time, so only a bad event is retried."""

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
