"""SQL expression helpers every layer may use (no tables, no sessions)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import String
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")


def unindexed(column: ColumnElement[T]) -> ColumnElement[T]:
    """A column as `column || ''` (text) or `column + 0` (numbers), which no index can serve. For a condition that
    must not steer SQLite's planner (which has no statistics unless ANALYZE ran) to its index when another one is
    far more selective: `id IN (...) AND state = 'pending'` would walk every pending row of a (state, ...) index,
    `order_id IN (...) AND id > ? AND type IN (...)` every later event of those types, and `site_id = ? AND
    created_at` in a 15-minute range every order of the site."""
    zero: Any = "" if isinstance(column.type, String) else 0
    return column + zero
