"""Building journey test data through the public API and services."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from retento.core.db.transactions import transaction
from retento.journeys import service
from retento.journeys.models import JourneyRun, JourneyStep


def save(app, definition: dict[str, Any]) -> int:
    with transaction(app.sessions) as s:
        journey, _ = service.apply(s, raw=definition, now=app.clock.now())
        return journey.id


def runs(app, journey_id: int | None = None, customer_id: int | None = None) -> list[JourneyRun]:
    with transaction(app.sessions) as s:
        q = select(JourneyRun).order_by(JourneyRun.id)
        if journey_id is not None:
            q = q.where(JourneyRun.journey_id == journey_id)
        if customer_id is not None:
            q = q.where(JourneyRun.customer_id == customer_id)
        out = list(s.scalars(q))
        s.expunge_all()
        return out


def path(app, run_id: int) -> list[tuple[str, str]]:
    """(step, outcome) of the steps a run went through, in order."""
    with transaction(app.sessions) as s:
        return [(st.step, st.outcome) for st in s.scalars(select(JourneyStep).where(JourneyStep.run_id == run_id)
                                                          .order_by(JourneyStep.id))]


def tags(app, customer_id: int) -> list[str]:
    from retento.customers import service as customers

    with transaction(app.sessions) as s:
        return customers.snapshot(s, customers.get(s, customer_id))["tags"]
