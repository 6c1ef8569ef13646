from retento.db import transaction
from retento.segments import service
from retento.segments.schemas import SegmentCreate
from tests import factories as f


def test_smoke(app):
    f.site(app)
    c1 = f.customer(app, email="a@example.com", tags=["vip"])
    c2 = f.customer(app, email="b@example.com")
    f.order(app, customer={"id": c1}, items=[{"name": "X", "price": "100.00", "quantity": 2}])
    app.worker.tick()
    with transaction(app.sessions) as s:
        seg = service.create(s, data=SegmentCreate(site="shop", code="buyers", name="Buyers",
                                                   rules={"orders": {"metric": "count", "op": "gte", "value": 1}}),
                             now=app.clock.now())
        assert service.member_ids(s, segment=seg) == [c1]
    f.order(app, customer={"id": c2})
    app.worker.tick()
    with transaction(app.sessions) as s:
        seg = service.get(s, seg.id)
        assert service.member_ids(s, segment=seg) == [c1, c2]
