"""Events the trigger domain records (other domains listen to them without importing the engine)."""

TRIGGER_ACTIVATED = "trigger_activated"  # payload: trigger_id, name, version, sites (codes; empty = every site)

ALL = (TRIGGER_ACTIVATED,)
