"""Inbox: customers' messages from Telegram (bots and business accounts), WhatsApp, VK and Instagram in dialogs
that operators answer (docs/inbox.md)."""
