"""Messaging: channels, templates, policies, cascades, campaigns, reports, tracking, bounces."""

API_PATH = "/api/v1/messaging"  # where the messaging API is mounted (links in messages point here too)
OLD_API_PATH = "/api/messaging"  # its place until 0.x: still answers, for one release (docs/api.md)
