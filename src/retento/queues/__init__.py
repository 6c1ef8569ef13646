"""Operators' view of deferred work: every queue of `app.work` (retento.core.work), its dead letters, retry, drop."""
