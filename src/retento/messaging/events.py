"""Events the messaging domain records (other domains listen to them without importing messaging)."""

from retento.core.bus import EventType

CAMPAIGN_STARTED = "campaign_started"  # site_id; payload: campaign_id, name, cascade_id, members

ALL = (CAMPAIGN_STARTED,)
TYPES = (EventType(CAMPAIGN_STARTED, None, "a campaign started sending"),)
