"""Events the messaging domain records (other domains listen to them without importing messaging)."""

CAMPAIGN_STARTED = "campaign_started"  # site_id; payload: campaign_id, name, cascade_id, members

ALL = (CAMPAIGN_STARTED,)
