"""Events the trigger domain records (other domains listen to them without importing the engine)."""

from retento.core.bus import EventType

TRIGGER_ACTIVATED = "trigger_activated"  # payload: trigger_id, name, version, sites (codes; empty = every site)

ALL = (TRIGGER_ACTIVATED,)
TYPES = (EventType(TRIGGER_ACTIVATED, None, "a trigger is switched on"),)
