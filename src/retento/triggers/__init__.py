"""Triggers ("robots"): event -> condition -> actions, now or after a delay. Wired by `wiring.install(app)`."""
