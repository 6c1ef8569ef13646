"""Events the inbox records (in the transaction of the change; the operators' live stream and triggers read them).

Payloads: `dialog_id`, `channel`, and
- `inbox_message`: `message_id`, `direction` (in, out, note), `kind`, `operator_id`
- `inbox_message_changed`: `message_id`, `change` (edited, deleted)
- `inbox_dialog_changed`: `state`, `assignee_id`, `unread`, `tags`, `change` (state, assignee, tags, read,
  customer, purged)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from retento.core.bus import EventType, event_row
from retento.core.changes import ChangeContext

if TYPE_CHECKING:
    from retento.inbox.models import Dialog

MESSAGE = "inbox_message"
MESSAGE_CHANGED = "inbox_message_changed"
DIALOG_CHANGED = "inbox_dialog_changed"

ALL = (MESSAGE, MESSAGE_CHANGED, DIALOG_CHANGED)
TYPES = (
    EventType(MESSAGE, "customer", "a message in a customer's inbox dialog (theirs, an operator's, or a note)"),
    EventType(MESSAGE_CHANGED, "customer", "a message of an inbox dialog was edited or deleted"),
    EventType(DIALOG_CHANGED, "customer", "an inbox dialog changed state, operator, tags or unread count"),
)


def row(event_type: str, dialog: Dialog, now: datetime, /, **payload: Any) -> dict[str, Any]:
    """The bus row of an inbox event about a dialog (pure; the caller records it in its transaction)."""
    return event_row(event_type, ctx=ChangeContext.system(), now=now, site_id=dialog.site_id,
                     customer_id=dialog.customer_id,
                     payload={"dialog_id": dialog.id, "channel": dialog.channel, **payload})


def dialog_changed(dialog: Dialog, now: datetime, change: str) -> dict[str, Any]:
    return row(DIALOG_CHANGED, dialog, now, state=dialog.state, assignee_id=dialog.assignee_id,
               unread=dialog.unread, tags=list(dialog.tags or []), change=change)
