"""Events the messaging domain records (other domains listen to them without importing messaging)."""

from retento.core.bus import EventType

CAMPAIGN_STARTED = "campaign_started"  # site_id; payload: campaign_id, name, cascade_id, members
# A customer read (an email: opened) / clicked a message for the first time; customer_id, site_id; payload:
# message_id, channel, run_id (the cascade run), cascade_id, campaign_id, step. A click implies a read: a click on
# a message not read before records both.
MESSAGE_READ = "message_read"
MESSAGE_CLICKED = "message_clicked"

ALL = (CAMPAIGN_STARTED, MESSAGE_READ, MESSAGE_CLICKED)
TYPES = (EventType(CAMPAIGN_STARTED, None, "a campaign started sending"),
         EventType(MESSAGE_READ, "customer", "a customer read (opened) a message"),
         EventType(MESSAGE_CLICKED, "customer", "a customer clicked a link in a message"))
