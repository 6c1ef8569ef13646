"""A journey version ready to run: the parsed definition, its steps by id and its conditions compiled once (versions
never change, so they are kept for the life of the process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.journeys import engine
from retento.journeys.models import Journey, JourneyVersion
from retento.journeys.schemas import BranchStep, JourneyIn
from retento.triggers.conditions import Condition, compile_condition


@dataclass(frozen=True)
class Compiled:
    version_id: int
    journey_id: int
    version: int
    name: str
    spec: JourneyIn
    steps: dict[str, Any]
    start: str
    entry: Condition
    exits: list[tuple[str, Condition]]  # (reason, condition) of the exit rules with a condition
    branches: dict[tuple[str, int], Condition] = field(default_factory=dict)


def compile_version(row: JourneyVersion, name: str) -> Compiled:
    spec = JourneyIn.model_validate({**row.definition, "active": True})
    branches = {(s.id, j): compile_condition(b.condition) for s in spec.steps if isinstance(s, BranchStep)
                for j, b in enumerate(s.branches) if b.condition}
    exits = [(f"condition:{i}", compile_condition(r.condition)) for i, r in enumerate(spec.exits) if r.condition]
    return Compiled(row.id, row.journey_id, row.version, name, spec, {s.id: s for s in spec.steps},
                    engine.start_of(spec), compile_condition(spec.entry.condition), exits, branches)


class Versions:
    """Compiled versions by id, loaded on first use."""

    def __init__(self) -> None:
        self._by_id: dict[int, Compiled] = {}

    def get(self, session: Session, version_ids: set[int]) -> dict[int, Compiled]:
        missing = [v for v in version_ids if v not in self._by_id]
        if missing:
            q = (select(JourneyVersion, Journey.name).join(Journey, Journey.id == JourneyVersion.journey_id)
                 .where(JourneyVersion.id.in_(missing)))
            for row, name in session.execute(q):
                self._by_id[row.id] = compile_version(row, name)
        return {v: self._by_id[v] for v in version_ids if v in self._by_id}

    def live(self, session: Session) -> list[tuple[Journey, Compiled]]:
        """The active journeys with their current versions (what new customers enter)."""
        q = (select(Journey, JourneyVersion.id).join(JourneyVersion, (JourneyVersion.journey_id == Journey.id)
                                                     & (JourneyVersion.version == Journey.version))
             .where(Journey.active.is_(True)))
        rows = list(session.execute(q))
        got = self.get(session, {vid for _, vid in rows})
        return [(j, got[vid]) for j, vid in rows if vid in got]
