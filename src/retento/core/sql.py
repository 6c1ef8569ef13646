"""SQL expression helpers every layer may use (no tables, no sessions)."""

from __future__ import annotations

from sqlalchemy.sql.elements import ColumnElement


def unindexed(column: ColumnElement[str]) -> ColumnElement[str]:
    """A text column as `column || ''`, which no index can serve. For a condition that must not steer SQLite's
    planner (which has no statistics unless ANALYZE ran) to its index when another one is far more selective:
    `id IN (...) AND state = 'pending'` would walk every pending row of a (state, ...) index, and
    `order_id IN (...) AND id > ? AND type IN (...)` every later event of those types."""
    return column + ""
