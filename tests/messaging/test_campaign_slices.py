"""A campaign bigger than one slice is planned slice by slice by several workers: every run exactly once, the
members summed, campaign_started recorded once, by the worker that finishes the last slice."""

import pytest
from sqlalchemy import func, select

from retento.bus import Event
from retento.db import transaction
from retento.messaging import campaigns, service
from retento.messaging.events import CAMPAIGN_STARTED
from retento.messaging.models import CampaignSlice, Message, Run
from retento.messaging.schemas import CampaignIn
from tests.messaging import helpers as h


def _big_campaign(mapp, n: int) -> tuple[int, list[int]]:
    h.setup_site(mapp)
    h.template(mapp, "bonus", "email")
    cascade = h.cascade(mapp, [("email", "bonus", 24)])
    ids = [h.customer(mapp, external_id=str(i), email=f"c{i}@example.com") for i in range(n)]
    with transaction(mapp.sessions) as s:
        camp = service.create_campaign(s, data=CampaignIn(cascade_id=cascade, name="big", customer_ids=ids),
                                       now=mapp.clock.now())
        return camp.id, ids


def _check(mapp, camp_id: int, ids: list[int]) -> None:
    with transaction(mapp.sessions) as s:
        runs = s.execute(select(Run.customer_id, func.count()).where(Run.campaign_id == camp_id)
                         .group_by(Run.customer_id)).all()
        assert sorted(runs) == [(c, 1) for c in sorted(ids)]
        assert s.scalar(select(func.count()).select_from(Message).where(Message.campaign_id == camp_id)) == len(ids)
        assert service.get_campaign(s, camp_id).members == len(ids)
        assert set(s.scalars(select(CampaignSlice.state).where(CampaignSlice.campaign_id == camp_id))) == {"done"}
        (started,) = s.scalars(select(Event).where(Event.type == CAMPAIGN_STARTED)).all()
        assert started.payload["members"] == len(ids)


def test_two_workers_interleaving_plan_every_run_once(mapp):
    with mapp.sessions() as s:
        if s.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite runs one worker; slices on SQLite are covered by test_campaign_start")
    camp_id, ids = _big_campaign(mapp, 11)
    mapp.messaging.settings.campaign_slice = 3
    with transaction(mapp.sessions) as s:
        assert campaigns.open_due_campaigns(s, now=mapp.clock.now(), slice_size=3) == 4
    with mapp.sessions() as a:  # worker A has claimed the first slice and not committed yet
        claimed = a.scalars(select(CampaignSlice).order_by(CampaignSlice.id).limit(1)
                            .with_for_update(skip_locked=True)).one()
        mapp.worker.tick()  # worker B: skips A's slice, plans the three others, cannot announce the campaign yet
        with transaction(mapp.sessions) as s:
            assert s.scalar(select(func.count()).select_from(Event).where(Event.type == CAMPAIGN_STARTED)) == 0
            assert s.scalar(select(func.count()).select_from(Run)) == len(ids) - 3
        assert campaigns.plan_slice(a, now=mapp.clock.now()) == 3  # A's own claim, the last slice
        assert a.get(CampaignSlice, claimed.id).state == "done"
        a.commit()
    assert mapp.worker.tick() >= 0
    with transaction(mapp.sessions) as s:
        assert campaigns.plan_slice(s, now=mapp.clock.now()) is None
    _check(mapp, camp_id, ids)


def test_a_worker_plans_a_campaign_slice_by_slice(mapp):
    camp_id, ids = _big_campaign(mapp, 7)
    mapp.messaging.settings.campaign_slice = 2
    h.drain(mapp)
    _check(mapp, camp_id, ids)
