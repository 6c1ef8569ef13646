"""Scopes and the authenticated caller of an API request."""

from __future__ import annotations

from dataclasses import dataclass

from retento.core.changes import ActorType, ChangeContext, Source

SCOPES = (
    "customers:read",
    "customers:write",
    "orders:read",
    "orders:write",
    "events:write",
    "history:read",
    "reference:read",
    "webhooks:manage",
    "triggers:manage",
    "journeys:manage",
    "tasks:read",
    "tasks:write",
    "segments:read",
    "segments:write",
    "messaging:read",
    "messaging:write",
    "work:manage",
    "loyalty:read",
    "loyalty:write",
    "inbox:read",
    "inbox:write",
    "assist:read",
    "assist:write",
)


def parse_scopes(text: str) -> list[str]:
    """`customers:read,orders:write` (or `all`) -> the list of scopes; unknown names raise ValueError."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return list(SCOPES)
    if not names:
        raise ValueError("give at least one scope")
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)}, or all)")
    return sorted(set(names), key=SCOPES.index)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key with its scopes and the sites it may touch (None: every site)."""

    key_id: int
    name: str
    scopes: frozenset[str]
    site_ids: frozenset[int] | None

    @property
    def ctx(self) -> ChangeContext:
        return ChangeContext(Source.API, ActorType.API_KEY, str(self.key_id))

    def may_see(self, site_id: int) -> bool:
        return self.site_ids is None or site_id in self.site_ids

    def visible(self, site_ids: list[int] | None = None) -> list[int] | None:
        """Sites a query may cover: the wanted ones intersected with the allowed ones (None: no restriction)."""
        if self.site_ids is None:
            return site_ids
        if site_ids is None:
            return sorted(self.site_ids)
        return [s for s in site_ids if s in self.site_ids]
