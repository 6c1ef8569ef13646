"""Who made a change and through what: every write carries a ChangeContext."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    API = "api"
    USER = "user"
    TRIGGER = "trigger"
    ROBOT = "robot"
    IMPORT = "import"
    SYSTEM = "system"
    DEMO = "demo"


class ActorType(StrEnum):
    API_KEY = "api_key"
    USER = "user"
    TRIGGER = "trigger"
    SYSTEM = "system"


@dataclass(frozen=True)
class ChangeContext:
    source: Source
    actor_type: ActorType = ActorType.SYSTEM
    actor_id: str | None = None
    depth: int = 0  # how many trigger-caused changes led here (loop protection)

    @classmethod
    def system(cls, source: Source = Source.SYSTEM) -> ChangeContext:
        return cls(source=source)
