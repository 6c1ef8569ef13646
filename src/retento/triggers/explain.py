"""Why a trigger did or did not fire: its evaluation on an entity's recorded events, event by event, and the
debug switch's run-log entries. Pure: no I/O; takes `now` and the data the service read.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from retento.core.bus import Event
from retento.triggers.compiled import Compiled
from retento.triggers.data import run_row

log = logging.getLogger(__name__)


def part_reason(t: Compiled, part: int) -> str:
    """The evaluator's wording for a false `&&` part (1-based) of the trigger's condition."""
    parts = t.condition.parts
    if len(parts) == 1:
        return f"condition `{t.condition.source}` is false"
    return f"part {part} of {len(parts)} is false: `{parts[part - 1][0]}`"


def debug_rows(compiled: dict[int, Compiled], misses: list[list[int]], runs: list[dict[str, Any]], *,
               now: datetime, ev: Event) -> list[list[int]]:
    """The debug switch: each entry of `misses` ([trigger id, version, false part]) of a trigger whose switch is on
    at `now` becomes a run-log row of its own in `runs` (outcome `not_matched`, the false part as reason) and is
    logged; returns the other entries (they stay in the event's shared row)."""
    rest = []
    for entry in misses:
        t = compiled.get(entry[0])
        if t is None or not t.debugging(now):
            rest.append(entry)
            continue
        reason = part_reason(t, entry[2])
        log.info("trigger %s (%s) on event %s (%s): not matched, %s", t.id, t.name, ev.id, ev.type, reason)
        runs.append(run_row(t.id, now, "event", ev, None, "not_matched", f"debug: {reason}"))
    return rest
