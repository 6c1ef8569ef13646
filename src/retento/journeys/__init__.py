"""Journeys: multi-step customer journeys (welcome chains, reactivation, post-purchase series) over days, branching
on what the customer did (docs/journeys.md)."""
